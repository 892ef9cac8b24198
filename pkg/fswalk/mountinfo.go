package fswalk

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo.
type Mount struct {
	ID, Parent int
	MountPoint string // absolute, as seen by the process that read mountinfo
	FSType     string // "ext4", "proc", "fuse.sshfs", ...
	Source     string
}

// ParseMountinfo decodes the format of /proc/PID/mountinfo (proc(5)), with the octal escapes
// ("\040" for a space) of its path fields decoded. Empty lines are skipped; a malformed line is
// an error naming its number, returned with the mounts of the lines before it.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var mounts []Mount
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMountLine(line)
		if err != nil {
			return mounts, fmt.Errorf("parsing mountinfo line %d: %w", n, err)
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return mounts, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mounts, nil
}

// parseMountLine decodes "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw".
func parseMountLine(line string) (Mount, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 8 || sep < 0 || sep+2 >= len(f) {
		return Mount{}, fmt.Errorf("%d fields without a \"-\" separator followed by type and source", len(f))
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		return Mount{}, fmt.Errorf("parsing mount id: %w", err)
	}
	parent, err := strconv.Atoi(f[1])
	if err != nil {
		return Mount{}, fmt.Errorf("parsing parent id: %w", err)
	}
	return Mount{
		ID:         id,
		Parent:     parent,
		MountPoint: unescapeOctal(f[4]),
		FSType:     unescapeOctal(f[sep+1]),
		Source:     unescapeOctal(f[sep+2]),
	}, nil
}

// unescapeOctal decodes the kernel's "\ooo" escapes; a backslash not followed by three octal
// digits of a byte value stays as it is.
func unescapeOctal(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := int(s[i+1]-'0')<<6 | int(s[i+2]-'0')<<3 | int(s[i+3]-'0')
			if v <= 0xff {
				b = append(b, byte(v))
				i += 3
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// pseudoTypes are the filesystem types whose contents a walk skips by default: kernel views,
// memory filesystems, and network filesystems. "overlay" is not one: it is a container's root.
var pseudoTypes = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"cgroup": true, "cgroup2": true, "mqueue": true, "debugfs": true, "tracefs": true,
	"securityfs": true, "pstore": true, "bpf": true, "configfs": true, "fusectl": true,
	"hugetlbfs": true, "autofs": true, "binfmt_misc": true, "rpc_pipefs": true, "nfsd": true,
	"efivarfs": true, "selinuxfs": true, "nsfs": true, "fuse": true,
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true, "9p": true, "ceph": true,
}

// IsPseudoFS reports whether a walk skips the contents of a filesystem of type fstype by default.
func IsPseudoFS(fstype string) bool {
	return pseudoTypes[fstype] || strings.HasPrefix(fstype, "fuse.")
}

// mountTable maps the slash paths, relative to a walk's root, of the mount points under it to
// their filesystem types. The last mount on a path wins, as it hides the ones before.
type mountTable map[string]string

// readMountTable reads the mounts under rootAbs (absolute, symlinks resolved) from file.
// An unreadable file yields an empty table.
func readMountTable(file, rootAbs string) mountTable {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	mounts, _ := ParseMountinfo(f) // keep what parsed before a bad line
	return mountsUnder(mounts, rootAbs)
}

func mountsUnder(mounts []Mount, rootAbs string) mountTable {
	prefix := strings.TrimSuffix(rootAbs, "/") + "/"
	t := mountTable{}
	for _, m := range mounts {
		rel, ok := strings.CutPrefix(m.MountPoint, prefix)
		if !ok || rel == "" {
			continue
		}
		t[strings.TrimSuffix(rel, "/")] = m.FSType
	}
	return t
}
