package procs

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"
)

// idNames maps numeric ids to the names of the served root's own
// /etc/passwd or /etc/group; the host's NSS is never consulted.
type idNames map[int]string

// name returns the name of id, or id in decimal when it has none.
func (m idNames) name(id int) string {
	if n, ok := m[id]; ok {
		return n
	}
	return strconv.Itoa(id)
}

// maxIDFile bounds /etc/passwd and /etc/group (directory-synced ones can be large).
const maxIDFile = 16 << 20

// readIDNames reads name:x:id:... lines of rel (such as "etc/passwd")
// inside root, symlinks resolved as in a chroot, under maxIDFile. A missing
// or unreadable file gives an empty map: names then fall back to numbers.
func readIDNames(root, rel string) idNames {
	r, err := rootfs.Open(root)
	if err != nil {
		return idNames{}
	}
	defer r.Close()
	f, err := r.OpenBounded(rel, maxIDFile)
	if err != nil {
		return idNames{}
	}
	defer f.Close()
	return parseIDNames(f)
}

// parseIDNames decodes passwd(5) or group(5) text. The first entry for an id
// wins, as in getpwuid(3); comments, NIS "+" lines and bad ids are skipped.
func parseIDNames(r io.Reader) idNames {
	m := idNames{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 4)
		if len(f) < 3 || f[0] == "" || f[0][0] == '#' || f[0][0] == '+' || f[0][0] == '-' {
			continue
		}
		id, err := parseID([]byte(f[2]))
		if err != nil {
			continue
		}
		if _, dup := m[id]; !dup {
			m[id] = f[0]
		}
	}
	return m
}
