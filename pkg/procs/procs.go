package procs

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Process is one process as the agent reports it.
type Process struct {
	PID       int      `json:"pid"`
	PPID      int      `json:"ppid"`
	UID       int      `json:"uid"`   // real
	GID       int      `json:"gid"`   // real
	EUID      int      `json:"euid"`  // effective
	User      string   `json:"user"`  // name of UID in the root's etc/passwd, else UID in decimal
	Group     string   `json:"group"` // name of GID in the root's etc/group, else GID in decimal
	Argv      []string `json:"argv"`  // every element, empty ones too
	Exe       string   `json:"exe"`   // "" when unreadable; relative to Options.Root
	Cwd       string   `json:"cwd"`   // "" when unreadable; relative to Options.Root
	Comm      string   `json:"comm"`
	StartTime uint64   `json:"start_time"` // clock ticks since boot
	Kernel    bool     `json:"kernel,omitempty"`
	Listening []Socket `json:"listening,omitempty"` // sorted by proto, port, addr
	Env       []string `json:"env,omitempty"`       // only with Options.Env
	// Unit is the systemd unit the process belongs to ("nginx.service"), from its cgroup; ""
	// when the VM does not run systemd or the process is in no unit.
	Unit string `json:"unit,omitempty"`
}

// Options selects what List reads and reports.
type Options struct {
	ProcDir       string // procfs mount; default "/proc"
	Root          string // the served root; default "/". Otherwise only processes chrooted into it are listed
	Env           bool   // report environments, which can hold secrets
	ListeningOnly bool   // report only processes with a listening socket
}

func (o *Options) applyDefaults() {
	if o.ProcDir == "" {
		o.ProcDir = "/proc"
	}
	if o.Root == "" {
		o.Root = "/"
	}
}

// List reports the processes under opts.ProcDir, sorted by PID. Processes
// that exit while being read are skipped; fields that cannot be read for
// lack of permission are left empty.
func List(ctx context.Context, opts Options) ([]Process, error) {
	opts.applyDefaults()
	l, err := newLister(opts)
	if err != nil {
		return nil, err
	}
	pids, err := listPIDs(opts.ProcDir)
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("listing processes: %w", err)
		}
		p, ok := l.read(pid)
		if !ok || opts.ListeningOnly && len(p.Listening) == 0 {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// lister holds what List reads once and uses for every process.
type lister struct {
	opts     Options
	root     string      // real path of opts.Root; "" when it is "/"
	rootInfo fs.FileInfo // nil when every process is listed
	users    idNames
	groups   idNames
	sockets  map[uint64]Socket
}

func newLister(opts Options) (*lister, error) {
	l := &lister{
		opts:   opts,
		users:  readIDNames(opts.Root, "etc/passwd"),
		groups: readIDNames(opts.Root, "etc/group"),
	}
	if filepath.Clean(opts.Root) != "/" {
		abs, err := filepath.Abs(opts.Root)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("resolving root: %w", err)
		}
		if l.rootInfo, err = os.Stat(abs); err != nil {
			return nil, fmt.Errorf("resolving root: %w", err)
		}
		if abs != "/" {
			l.root = abs
		}
	}
	socks, err := Listeners(opts.ProcDir)
	if err != nil {
		return nil, fmt.Errorf("listing sockets: %w", err)
	}
	l.sockets = socks
	return l, nil
}

// read reads one process; ok is false when it is gone, unreadable or
// outside the served root.
func (l *lister) read(pid int) (p Process, ok bool) {
	dir := filepath.Join(l.opts.ProcDir, strconv.Itoa(pid))
	st, err := readStat(dir)
	if err != nil {
		return Process{}, false
	}
	if l.rootInfo != nil && !l.inRoot(dir) {
		return Process{}, false
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Process{}, false
	}
	id, err := parseStatusIDs(status)
	if err != nil {
		return Process{}, false
	}
	p = Process{
		PID: st.PID, PPID: st.PPID, Comm: st.Comm, StartTime: st.StartTime,
		UID: id.uid, EUID: id.euid, GID: id.gid,
		User: l.users.name(id.uid), Group: l.groups.name(id.gid),
		Kernel: st.Flags&pfKThread != 0 || pid == 2 || st.PPID == 2,
	}
	if !p.Kernel {
		p.Argv = readNULList(filepath.Join(dir, "cmdline"))
		p.Exe = l.link(filepath.Join(dir, "exe"))
		p.Cwd = l.link(filepath.Join(dir, "cwd"))
		p.Listening = l.listening(filepath.Join(dir, "fd"))
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
			p.Unit = UnitFromCgroup(b)
		}
		if l.opts.Env {
			p.Env = readNULList(filepath.Join(dir, "environ"))
		}
	}
	// A process that exited, or whose pid was reused, while we read it may
	// have left half its fields empty: skip it.
	if again, err := readStat(dir); err != nil || again.StartTime != st.StartTime {
		return Process{}, false
	}
	return p, true
}

// inRoot reports whether the process in dir runs with the served root as
// its root directory.
func (l *lister) inRoot(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "root"))
	return err == nil && os.SameFile(fi, l.rootInfo)
}

// link reads a symlink of a process and makes it relative to the served
// root; it returns "" when the link cannot be read. Paths outside the root
// are kept as the host sees them.
func (l *lister) link(path string) string {
	target, err := os.Readlink(path)
	if err != nil {
		return ""
	}
	switch {
	case l.root == "":
		return target
	case target == l.root:
		return "/"
	case strings.HasPrefix(target, l.root+"/"):
		return target[len(l.root):]
	}
	return target
}

// listening maps the socket descriptors in fdDir to listening sockets.
func (l *lister) listening(fdDir string) []Socket {
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return nil
	}
	var out []Socket
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue
		}
		inode, ok := socketInode(target)
		if !ok {
			continue
		}
		s, ok := l.sockets[inode]
		if ok && !slices.ContainsFunc(out, func(o Socket) bool { return o.Inode == inode }) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, compareSockets)
	return out
}

func compareSockets(a, b Socket) int {
	return cmp.Or(
		cmp.Compare(a.Proto, b.Proto),
		cmp.Compare(a.Port, b.Port),
		cmp.Compare(a.Addr, b.Addr),
		cmp.Compare(a.Inode, b.Inode),
	)
}

// socketInode decodes a descriptor link of the form "socket:[INODE]".
func socketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func readStat(dir string) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("reading stat: %w", err)
	}
	return ParseStat(b)
}

// readNULList reads a NUL-separated list such as cmdline or environ. Every
// element is kept, empty ones too; only the final terminator is dropped.
// It returns nil when the file is empty or unreadable.
func readNULList(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

// listPIDs returns the numeric entries of procDir in ascending order.
func listPIDs(procDir string) ([]int, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// isGone reports whether err says a process no longer exists.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}
