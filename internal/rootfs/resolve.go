package rootfs

import (
	"io/fs"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// resolve is the user-space resolver for kernels without openat2 (before 5.6). It walks name
// one component at a time with O_PATH|O_NOFOLLOW, so the kernel never follows a link: it reads
// each symlink and continues with its target, from the root when the target is absolute. ".."
// goes back one directory and stops at the root. The kernel is only ever given single names, so
// /proc magic links are read as text (their target then resolves inside the root too).
func (r *Root) resolve(name string, follow bool) (*located, error) {
	w := &walker{root: r.fd, parts: split(name, nil)}
	cur, err := unix.Dup(r.fd)
	if err != nil {
		return nil, err
	}
	w.cur = cur
	l, err := w.run(follow)
	if err != nil {
		unix.Close(w.cur)
		return nil, err
	}
	return l, nil
}

type walker struct {
	root  int
	cur   int      // O_PATH descriptor of the current directory, owned
	stack []string // names from the root to cur: real directories
	parts []string // components still to resolve, first first
	links int
}

func (w *walker) run(follow bool) (*located, error) {
	for len(w.parts) > 0 {
		c := w.parts[0]
		w.parts = w.parts[1:]
		last := len(w.parts) == 0
		switch c {
		case ".":
			continue
		case "..":
			if err := w.up(); err != nil {
				return nil, err
			}
			continue
		}
		fd, err := unix.Openat(w.cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, err
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK && (follow || !last):
			if err := w.link(fd); err != nil {
				return nil, err
			}
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			unix.Close(w.cur)
			w.cur = fd
			w.stack = append(w.stack, c)
		case !last:
			unix.Close(fd)
			return nil, unix.ENOTDIR
		default:
			return &located{fd: fd, parent: w.cur, base: c}, nil
		}
	}
	return &located{fd: w.cur, parent: -1}, nil
}

// link continues the walk with the target of the symlink open at fd (closed here).
func (w *walker) link(fd int) error {
	w.links++
	if w.links > maxLinks {
		unix.Close(fd)
		return unix.ELOOP
	}
	target, err := readlink(fd)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if target == "" {
		return unix.ENOENT
	}
	if strings.HasPrefix(target, "/") {
		root, err := unix.Dup(w.root)
		if err != nil {
			return err
		}
		unix.Close(w.cur)
		w.cur, w.stack = root, w.stack[:0]
	}
	w.parts = split(target, w.parts)
	return nil
}

// up goes to the parent of the current directory, staying at the root. It reopens the parent
// from the root along the names walked, rather than through "..", so a directory moved out of
// the root meanwhile cannot lead outside it.
func (w *walker) up() error {
	if len(w.stack) == 0 {
		return nil
	}
	w.stack = w.stack[:len(w.stack)-1]
	fd, err := unix.Dup(w.root)
	if err != nil {
		return err
	}
	for _, c := range w.stack {
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	unix.Close(w.cur)
	w.cur = fd
	return nil
}

// readlink reads the target of the symlink open at fd (O_PATH|O_NOFOLLOW).
func readlink(fd int) (string, error) {
	for size := 256; size <= 1<<16; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// split prepends the components of p to rest. Empty components go; a trailing slash becomes
// "." so that the name before it must be a directory, as in the kernel.
func split(p string, rest []string) []string {
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			parts = append(parts, c)
		}
	}
	if strings.HasSuffix(p, "/") && len(parts) > 0 {
		parts = append(parts, ".")
	}
	return append(parts, rest...)
}

func sortEntries(ents []fs.DirEntry) {
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
}
