package fit

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/wire"
)

// DataKind names the data directories fit knows, and their marks.
var dataDirs = []struct {
	path, what string
}{
	{"/var/lib/postgresql", "PostgreSQL's databases"},
	{"/var/lib/mysql", "MySQL/MariaDB's databases"},
	{"/var/lib/redis", "Redis's dump and append-only files"},
	{"/var/lib/mongodb", "MongoDB's databases"},
	{"/var/mail", "mail spools"},
	{"/var/spool/mail", "mail spools"},
	{"/var/vmail", "mail spools"},
}

// largeData is the size from which another directory under /var/lib or /srv is reported.
const largeData = 1 << 30

type dirSum struct {
	bytes, files int64
}

type walker struct {
	setuid  []string
	caps    []Finding
	devices []string
	known   map[string]*dirSum // by dataDirs path
	other   map[string]*dirSum // /var/lib/X, /srv/X
}

// walkTree walks the VM's manifest once for setuid programs, file capabilities, device nodes
// and data directories.
func walkTree(ctx context.Context, src Source, excludes []string) ([]Finding, error) {
	w := &walker{known: map[string]*dirSum{}, other: map[string]*dirSum{}}
	_, err := src.Tree(ctx, wire.TreeArgs{Excludes: excludes}, func(e *fsmeta.Entry) error {
		w.entry(e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return w.findings(), nil
}

func (w *walker) entry(e *fsmeta.Entry) {
	p := "/" + strings.TrimPrefix(e.Path, "/")
	switch e.Type {
	case fsmeta.TypeRegular:
		if e.Mode&(fsmeta.ModeSetuid|fsmeta.ModeSetgid) != 0 && e.Mode&0111 != 0 {
			w.setuid = append(w.setuid, p)
		}
		if c, ok := e.Xattrs["security.capability"]; ok {
			w.caps = append(w.caps, capFinding(p, c))
		}
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		if !strings.HasPrefix(p, "/dev/") {
			w.devices = append(w.devices, p)
		}
	}
	for _, d := range dataDirs {
		if p == d.path || strings.HasPrefix(p, d.path+"/") {
			w.add(w.known, d.path, e)
			return
		}
	}
	for _, top := range []string{"/var/lib/", "/srv/"} {
		if rest, ok := strings.CutPrefix(p, top); ok && rest != "" {
			name, _, _ := strings.Cut(rest, "/")
			w.add(w.other, top+name, e)
		}
	}
}

func (w *walker) add(m map[string]*dirSum, key string, e *fsmeta.Entry) {
	s := m[key]
	if s == nil {
		s = &dirSum{}
		m[key] = s
	}
	if e.Type == fsmeta.TypeRegular {
		s.bytes += e.Size
		s.files++
	}
}

func (w *walker) findings() []Finding {
	var out []Finding
	if len(w.setuid) > 0 {
		list := w.setuid
		if len(list) > 12 {
			list = append(slices.Clone(list[:12]), fmt.Sprintf("and %d more", len(w.setuid)-12))
		}
		out = append(out, Finding{Kind: KindSetuid, Severity: Note, Subject: fmt.Sprintf("%d setuid/setgid programs", len(w.setuid)),
			Reason:     "they come along with their modes: " + strings.Join(list, ", "),
			Suggestion: "they work unless the container runs with --security-opt no-new-privileges; remove those the services do not need"})
	}
	out = append(out, w.caps...)
	for _, d := range w.devices {
		out = append(out, Finding{Kind: KindRawDevice, Severity: Decision, Subject: d,
			Reason: "a device node outside /dev: the container's devices are the engine's", Suggestion: "pass the device with --device if a service needs it"})
	}
	for _, d := range dataDirs {
		s := w.known[d.path]
		if s == nil || s.files == 0 {
			continue
		}
		out = append(out, Finding{Kind: KindDataDir, Severity: Note, Subject: d.path, Bytes: s.bytes, Volume: true,
			Reason:     fmt.Sprintf("%s (%d files, %s): data that changes while the container runs and that should outlive the image", d.what, s.files, units.IEC(s.bytes)),
			Suggestion: "convert with --volume " + d.path + " (or --volumes auto): the data goes into a volume's initial content, not the image"})
	}
	var large []string
	for p, s := range w.other {
		if s.bytes >= largeData {
			large = append(large, p)
		}
	}
	slices.Sort(large)
	for _, p := range large {
		s := w.other[p]
		out = append(out, Finding{Kind: KindDataDir, Severity: Note, Subject: p, Bytes: s.bytes,
			Reason:     fmt.Sprintf("a large directory (%d files, %s): if a service writes it, it is data, not image", s.files, units.IEC(s.bytes)),
			Suggestion: "convert with --volume " + p + " if it is a service's data"})
	}
	return out
}

// capNames are the capability bits (linux/capability.h).
var capNames = []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
	"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"}

// dockerDefaultCaps are the capabilities Docker grants a container by default.
var dockerDefaultCaps = map[string]bool{"CHOWN": true, "DAC_OVERRIDE": true, "FSETID": true, "FOWNER": true, "MKNOD": true,
	"NET_RAW": true, "SETGID": true, "SETUID": true, "SETFCAP": true, "SETPCAP": true, "NET_BIND_SERVICE": true,
	"SYS_CHROOT": true, "KILL": true, "AUDIT_WRITE": true}

// ParseCapability decodes a security.capability xattr (vfs_cap_data, revisions 1 to 3) into the
// names of its permitted capabilities.
func ParseCapability(b []byte) ([]string, error) {
	if len(b) < 12 {
		return nil, fmt.Errorf("capability xattr of %d bytes", len(b))
	}
	rev := binary.LittleEndian.Uint32(b) & 0xFF000000
	perm := uint64(binary.LittleEndian.Uint32(b[4:]))
	switch rev {
	case 0x01000000:
	case 0x02000000, 0x03000000:
		if len(b) < 20 {
			return nil, fmt.Errorf("capability xattr revision %d of %d bytes", rev>>24, len(b))
		}
		perm |= uint64(binary.LittleEndian.Uint32(b[12:])) << 32
	default:
		return nil, fmt.Errorf("unknown capability xattr revision %#x", rev)
	}
	var names []string
	for i := 0; i < 64; i++ {
		if perm&(1<<i) == 0 {
			continue
		}
		if i < len(capNames) {
			names = append(names, capNames[i])
		} else {
			names = append(names, fmt.Sprintf("CAP_%d", i))
		}
	}
	return names, nil
}

func capFinding(p string, x []byte) Finding {
	f := Finding{Kind: KindCapability, Severity: Note, Subject: p}
	names, err := ParseCapability(x)
	if err != nil {
		f.Reason, f.Suggestion = "a file capability that could not be read: "+err.Error(), "check it with getcap in the VM"
		return f
	}
	var extra []string
	for _, n := range names {
		if !dockerDefaultCaps[n] {
			extra = append(extra, n)
		}
	}
	f.Reason = fmt.Sprintf("it runs with %s: the capabilities come along in the image", strings.Join(names, ", "))
	f.Suggestion = "Docker grants these by default; keep them if the container drops capabilities (--cap-drop)"
	if len(extra) > 0 {
		f.Severity = Decision
		f.Reason = fmt.Sprintf("it runs with %s, beyond Docker's default set", strings.Join(names, ", "))
		f.Suggestion = "run the container with --cap-add " + strings.Join(extra, " --cap-add ") + " if a service uses it"
	}
	return f
}
