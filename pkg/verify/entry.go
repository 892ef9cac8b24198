package verify

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/pkg/fsmeta"
)

const selinuxXattr = "security.selinux"

// compare reports how the VM's entry e and the image's node n of the same path and type differ.
func (m *merger) compare(e *fsmeta.Entry, n *node) {
	p := e.Path
	if e.Type != fsmeta.TypeSymlink && e.Mode != n.mode {
		m.add(KindMode, p, fmt.Sprintf("%04o", e.Mode), fmt.Sprintf("%04o", n.mode))
	}
	if e.UID != n.uid || e.GID != n.gid {
		m.add(KindOwner, p, fmt.Sprintf("%d:%d", e.UID, e.GID), fmt.Sprintf("%d:%d", n.uid, n.gid))
	}
	switch e.Type {
	case fsmeta.TypeRegular:
		m.compareFile(e, n)
	case fsmeta.TypeSymlink:
		if e.Target != n.extra.target {
			m.add(KindTarget, p, e.Target, n.extra.target)
		}
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		if e.DevMajor != n.extra.major || e.DevMinor != n.extra.minor {
			m.add(KindDevice, p, fmt.Sprintf("%d,%d", e.DevMajor, e.DevMinor), fmt.Sprintf("%d,%d", n.extra.major, n.extra.minor))
		}
	}
	var nx map[string][]byte
	if n.extra != nil {
		nx = n.extra.xattrs
	}
	if vm, img, differ := m.xattrDiff(e.Xattrs, nx); differ {
		m.add(KindXattr, p, vm, img)
	}
}

func (m *merger) compareFile(e *fsmeta.Entry, n *node) {
	p := e.Path
	if e.Size != n.size {
		m.add(KindSize, p, strconv.FormatInt(e.Size, 10), strconv.FormatInt(n.size, 10))
	} else if vmDigest, ok := strings.CutPrefix(e.Digest, "sha256:"); ok {
		if img := hex.EncodeToString(n.digest[:]); vmDigest != img {
			m.add(KindContent, p, shortDigest(vmDigest), shortDigest(img))
		}
	}
	vmLeader, imgLeader := p, p
	if e.Nlink > 1 {
		k := devIno{e.Dev, e.Ino}
		if l, ok := m.vmLinks[k]; ok {
			vmLeader = l
		} else {
			m.vmLinks[k] = p
		}
	}
	if n.extra != nil && n.extra.group != nil {
		if g := n.extra.group; g.leader == "" {
			g.leader = p
		} else {
			imgLeader = g.leader
		}
	}
	if vmLeader != imgLeader {
		m.add(KindHardlink, p, linkedTo(p, vmLeader), linkedTo(p, imgLeader))
	}
}

func linkedTo(p, leader string) string {
	if p == leader {
		return "not linked to an earlier name"
	}
	return "linked to " + leader
}

func shortDigest(hexDigest string) string {
	if len(hexDigest) > 16 {
		hexDigest = hexDigest[:16]
	}
	return "sha256:" + hexDigest
}

// xattrDiff compares two sets of extended attributes, security.selinux left out unless asked
// for, and describes the names whose values differ on each side.
func (m *merger) xattrDiff(vm, img map[string][]byte) (string, string, bool) {
	names := map[string]bool{}
	for k := range vm {
		names[k] = true
	}
	for k := range img {
		names[k] = true
	}
	var differ []string
	for k := range names {
		if k == selinuxXattr && !m.c.opts.KeepSELinux {
			continue
		}
		v, inVM := vm[k]
		i, inImg := img[k]
		if inVM != inImg || string(v) != string(i) {
			differ = append(differ, k)
		}
	}
	if len(differ) == 0 {
		return "", "", false
	}
	sort.Strings(differ)
	return describeXattrs(vm, differ), describeXattrs(img, differ), true
}

func describeXattrs(x map[string][]byte, names []string) string {
	var parts []string
	for _, k := range names {
		if v, ok := x[k]; ok {
			parts = append(parts, k+"="+shortValue(v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// shortValue shows an xattr value: quoted when printable, else its first bytes in hex.
func shortValue(v []byte) string {
	s := v
	if len(s) > 0 && s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	printable := len(s) <= 64
	for _, b := range s {
		if b < 0x20 || b > 0x7e {
			printable = false
			break
		}
	}
	if printable {
		return strconv.Quote(string(s))
	}
	if len(v) > 16 {
		return "0x" + hex.EncodeToString(v[:16]) + "…"
	}
	return "0x" + hex.EncodeToString(v)
}

// describeEntry is the short value of a VM entry in a difference.
func describeEntry(e *fsmeta.Entry) string {
	return describe(e.Type, e.Mode, e.UID, e.GID, e.Size, e.Target, e.DevMajor, e.DevMinor)
}

// describeNode is the short value of an image entry, with how many entries lie below it.
func describeNode(n *node, below int64) string {
	var target string
	var major, minor uint32
	if n.extra != nil {
		target, major, minor = n.extra.target, n.extra.major, n.extra.minor
	}
	s := describe(n.typ, n.mode, n.uid, n.gid, n.size, target, major, minor)
	return s + belowText(below)
}

// belowText says how many entries a difference about a directory stands for.
func belowText(n int64) string {
	switch n {
	case 0:
		return ""
	case 1:
		return " (+1 entry below)"
	}
	return fmt.Sprintf(" (+%d entries below)", n)
}

func describe(t fsmeta.Type, mode, uid, gid uint32, size int64, target string, major, minor uint32) string {
	switch t {
	case fsmeta.TypeRegular:
		return fmt.Sprintf("file %04o %d:%d %d bytes", mode, uid, gid, size)
	case fsmeta.TypeSymlink:
		return fmt.Sprintf("symlink -> %s", target)
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		return fmt.Sprintf("%s %d,%d %04o %d:%d", t, major, minor, mode, uid, gid)
	}
	return fmt.Sprintf("%s %04o %d:%d", t, mode, uid, gid)
}
