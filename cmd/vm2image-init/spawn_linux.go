package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
)

// errNotFound marks a program that is not there (exit code 127).
var errNotFound = errors.New("program not found")

// spawn runs a service's pre-start commands in order, then starts its command as its user, in
// its working directory and environment, in a new process group, and returns its pid. With tty,
// that group becomes the foreground group of the terminal on stdin (an interactive command:
// docker run -it IMAGE sh). The caller reaps it.
func spawn(spec services.Service, tty bool, logf func(string, ...any)) (int, error) {
	env, err := serviceEnv(spec)
	if err != nil {
		return 0, err
	}
	for _, c := range spec.Pre {
		pid, err := spawnCmd(spec, c.Argv, c.Privileged, env, false)
		if err != nil {
			return 0, fmt.Errorf("exec_start_pre %q: %w", c.Argv, err)
		}
		code := waitPid(pid)
		logf("%s: exec_start_pre %q exited with code %d", spec.Name, c.Argv, code)
		if code != 0 && !c.IgnoreFailure {
			return 0, fmt.Errorf("%w: exec_start_pre %q exited with code %d", errPreFailed, c.Argv, code)
		}
	}
	return spawnCmd(spec, spec.Command(), spec.Privileged, env, tty)
}

// errPreFailed marks a pre-start command that failed (the service counts as failed, code 1).
var errPreFailed = errors.New("pre-start command failed")

// waitPid waits for one child and returns its exit status.
func waitPid(pid int) int {
	for {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return 1
		}
		return exitStatus(ws)
	}
}

// spawnCmd starts one command of a service; privileged runs it as root.
func spawnCmd(spec services.Service, argv []string, privileged bool, env []string, tty bool) (int, error) {
	if spec.ExpandEnv {
		argv = expandArgv(argv, env)
		if len(argv) == 0 {
			return 0, fmt.Errorf("%w: the command expands to nothing", errNotFound)
		}
	}
	prog, err := lookPath(argv[0], env)
	if err != nil {
		return 0, err
	}
	cred, err := credential(spec)
	if err != nil {
		return 0, err
	}
	if privileged && os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{0}}
	}
	dir := spec.Cwd
	if dir == "" {
		dir = "/"
	}
	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: cred, Foreground: tty, Ctty: 0},
	}
	if spec.UMask != "" {
		if m, err := strconv.ParseUint(spec.UMask, 8, 32); err == nil {
			old := syscall.Umask(int(m)) // the init is the only writer of its umask
			defer syscall.Umask(old)
		}
	}
	pid, err := syscall.ForkExec(prog, argv, attr)
	if err != nil {
		return 0, fmt.Errorf("running %s: %w", prog, err)
	}
	return pid, nil
}

// withDefaultPath adds PATH to env when it has none.
func withDefaultPath(env []string) []string {
	if slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		return env
	}
	return append(slices.Clone(env), "PATH="+services.DefaultPath)
}

// lookPath finds name in the service's own PATH when it has no slash.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("%w: %s", errNotFound, name)
		}
		return name, nil
	}
	path := services.DefaultPath
	for _, e := range env {
		if p, ok := strings.CutPrefix(e, "PATH="); ok {
			path = p
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(cmp.Or(dir, "."), name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s in PATH %s", errNotFound, name, path)
}

// credential returns the ids a service runs as: uid and gid as written; a user name given with
// uid and gid 0 (a hand-written file) is looked up in /etc/passwd. Supplementary groups are the
// user's groups in /etc/group. Nil when the init already runs as that user without privileges.
func credential(spec services.Service) (*syscall.Credential, error) {
	uid, gid := spec.UID, spec.GID
	if uid == 0 && gid == 0 && spec.User != "" && spec.User != "root" {
		if _, err := strconv.Atoi(spec.User); err != nil {
			u, g, ok := lookupUser("/etc/passwd", spec.User)
			if !ok {
				return nil, fmt.Errorf("looking up user %s: not in /etc/passwd", spec.User)
			}
			uid, gid = u, g
		}
	}
	if spec.Group != "" {
		if gid = lookupGroup("/etc/group", spec.Group); gid < 0 {
			return nil, fmt.Errorf("looking up group %s: not in /etc/group", spec.Group)
		}
	}
	if os.Geteuid() != 0 {
		if uid == os.Getuid() && gid == os.Getgid() {
			return nil, nil
		}
		return nil, fmt.Errorf("running as uid %d: the init is not root", uid)
	}
	groups := userGroups("/etc/group", spec.User, gid)
	for _, g := range spec.SupplementaryGroups {
		n := lookupGroup("/etc/group", g)
		if n < 0 {
			return nil, fmt.Errorf("looking up supplementary group %s: not in /etc/group", g)
		}
		if !slices.Contains(groups, uint32(n)) {
			groups = append(groups, uint32(n))
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// lookupUser finds name's uid and gid in a passwd(5) file.
func lookupUser(file, name string) (uid, gid int, ok bool) {
	found := false
	scanColon(file, func(f []string) bool {
		if len(f) >= 4 && f[0] == name {
			u, err1 := strconv.Atoi(f[2])
			g, err2 := strconv.Atoi(f[3])
			uid, gid, found = u, g, err1 == nil && err2 == nil
			return false
		}
		return true
	})
	return uid, gid, found
}

// userGroups returns gid and the groups of a group(5) file that list name as a member.
func userGroups(file, name string, gid int) []uint32 {
	groups := []uint32{uint32(gid)}
	if name == "" {
		return groups
	}
	scanColon(file, func(f []string) bool {
		if len(f) < 4 || !slices.Contains(strings.Split(f[3], ","), name) {
			return true
		}
		if g, err := strconv.Atoi(f[2]); err == nil && !slices.Contains(groups, uint32(g)) {
			groups = append(groups, uint32(g))
		}
		return true
	})
	return groups
}

// scanColon calls fn with the fields of each line of a colon-separated file until fn returns
// false. A missing file has no lines.
func scanColon(file string, fn func([]string) bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !fn(strings.Split(line, ":")) {
			return
		}
	}
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// becomeSubreaper makes orphaned descendants the init's children when it is not PID 1.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// groupAlive reports whether the process group has a member (a zombie not reaped yet counts).
func groupAlive(pgid int) bool {
	if pgid <= 0 {
		return false
	}
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

type child struct{ pid, pgid int }

// children lists the processes whose parent is ppid, from /proc.
func children(ppid int) []child {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []child
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := procs.ParseStat(b); err == nil && st.PPID == ppid {
			out = append(out, child{pid: pid, pgid: st.PGRP})
		}
	}
	return out
}
