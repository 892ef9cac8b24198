package disk

import (
	"bufio"
	"bytes"
	"path"
	"sort"
	"strings"
)

// FstabEntry is one line of a guest's /etc/fstab that names a local block filesystem.
type FstabEntry struct {
	Spec  string // UUID=..., LABEL=..., PARTUUID=..., /dev/...
	Point string // cleaned, absolute
	Type  string
}

// ParseFstab reads the filesystems of an fstab: swap, pseudo and network filesystems, bind
// mounts, noauto entries and mount points with unusual characters are left out. The result is
// sorted parents first; the root ("/") is kept.
func ParseFstab(b []byte) []FstabEntry {
	var out []FstabEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || strings.HasPrefix(f[0], "#") {
			continue
		}
		spec, mp, typ := f[0], unescapeFstab(f[1]), f[2]
		opts := ""
		if len(f) > 3 {
			opts = f[3]
		}
		if !isBlockFS(typ) || hasOption(opts, "bind") || hasOption(opts, "noauto") {
			continue
		}
		if !path.IsAbs(mp) || path.Clean(mp) != mp || !isSafeMount(mp) {
			continue
		}
		out = append(out, FstabEntry{Spec: spec, Point: mp, Type: typ})
	}
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Point) < depth(out[j].Point) })
	return out
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// unescapeFstab undoes fstab's octal escapes for space, tab and newline (\040 and friends).
func unescapeFstab(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// isBlockFS says whether typ is a filesystem read off a block device (auto included).
func isBlockFS(typ string) bool {
	switch typ {
	case "ext2", "ext3", "ext4", "xfs", "btrfs", "auto", "vfat", "f2fs", "jfs", "reiserfs":
		return true
	}
	return false
}
