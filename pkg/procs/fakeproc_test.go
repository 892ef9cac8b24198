//go:build linux

package procs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// statLine builds a stat line with the given comm, ppid, flags and start time.
func statLine(pid, comm string, ppid, flags, start string) string {
	return pid + " (" + comm + ") S " + ppid + " 1 1 0 -1 " + flags +
		" 0 0 0 0 5 6 0 0 20 0 1 0 " + start + " 1000 10 18446744073709551615 0 0\n"
}

// fakeProc builds a procfs-shaped tree that needs no privileges: a normal
// process, a kernel thread, a process with no status (it vanished), a bad
// stat, and a non-pid entry.
func fakeProc(t *testing.T) (procDir, root string) {
	t.Helper()
	procDir = t.TempDir()
	root = t.TempDir()
	writeFile(t, filepath.Join(root, "etc", "passwd"), "# users\nsvc:x:4242:4242::/:/bin/false\nalias:x:4242:4242::/:/bin/false\n")
	writeFile(t, filepath.Join(root, "etc", "group"), "svc:x:4242:\n")
	p := func(elem ...string) string { return filepath.Join(append([]string{procDir}, elem...)...) }

	writeFile(t, p("100", "stat"), statLine("100", "my (svc) x", "1", "4194560", "777"))
	writeFile(t, p("100", "status"), "Name:\tsvc\nUid:\t4242\t4242\t4242\t4242\nGid:\t4242\t4242\t4242\t4242\n")
	writeFile(t, p("100", "cmdline"), "/srv/svc\x00\x00--port=80\x00")
	writeFile(t, p("100", "environ"), "A=1\x00B=\x00")
	symlink(t, filepath.Join(root, "srv", "svc"), p("100", "exe"))
	symlink(t, filepath.Join(root, "srv"), p("100", "cwd"))
	symlink(t, root, p("100", "root"))
	symlink(t, "socket:[5555]", p("100", "fd", "3"))
	symlink(t, "socket:[5555]", p("100", "fd", "4"))
	symlink(t, "socket:[6666]", p("100", "fd", "5"))
	symlink(t, "pipe:[7777]", p("100", "fd", "6"))

	writeFile(t, p("2", "stat"), statLine("2", "kthreadd", "0", "2129984", "1"))
	writeFile(t, p("2", "status"), "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n")
	writeFile(t, p("101", "stat"), statLine("101", "gone", "1", "0", "9"))
	writeFile(t, p("102", "stat"), "102 (bad\n")
	writeFile(t, p("self", "stat"), statLine("1", "x", "0", "0", "1"))

	// No ns/net links: Listeners falls back to procDir/net.
	writeFile(t, p("net", "tcp"), netHeader+
		"   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1 0000000000000000 100 0 0 10 0\n")
	writeFile(t, p("net", "udp"), udpHeader+
		" 1: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 6666 2 0000000000000000 0\n")
	return procDir, root
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func TestListFakeProc(t *testing.T) {
	procDir, root := fakeProc(t)
	ps := list(t, Options{ProcDir: procDir, Root: root, Env: true})
	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = p.PID
	}
	if !slices.Equal(pids, []int{100}) {
		t.Fatalf("Root %s lists pids %v, want [100]", root, pids)
	}
	got := ps[0]
	want := Process{
		PID: 100, PPID: 1, UID: 4242, GID: 4242, EUID: 4242, User: "svc", Group: "svc",
		Argv: []string{"/srv/svc", "", "--port=80"}, Exe: "/srv/svc", Cwd: "/srv",
		Comm: "my (svc) x", StartTime: 777, Env: []string{"A=1", "B="},
		Listening: []Socket{
			{Proto: "tcp", Addr: "0.0.0.0", Port: 80, Inode: 5555},
			{Proto: "udp", Addr: "127.0.0.1", Port: 53, Inode: 6666},
		},
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
		t.Errorf("got  %s\nwant %s", g, w)
	}

	ps = list(t, Options{ProcDir: procDir})
	if len(ps) != 2 || !ps[0].Kernel || ps[0].PID != 2 || ps[0].Argv != nil || ps[1].Env != nil {
		t.Errorf("Root /: %+v", ps)
	}
	if ps[1].User != "4242" && !passwdHas(t, "/etc/passwd", "", "4242") {
		// The host's passwd, not the fake root's, names users for Root "/".
		t.Errorf("Root /: user %q, want 4242", ps[1].User)
	}
	if ps[1].Exe != filepath.Join(root, "srv", "svc") {
		t.Errorf("Root /: exe %q is not the host path", ps[1].Exe)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProcessJSONKeys(t *testing.T) {
	b := mustJSON(t, Process{Kernel: true, Listening: []Socket{{}}, Env: []string{"A=1"}})
	for _, k := range []string{"pid", "ppid", "uid", "gid", "euid", "user", "group", "argv", "exe",
		"cwd", "comm", "start_time", "kernel", "listening", "env", "proto", "addr", "port", "inode"} {
		if !strings.Contains(b, `"`+k+`":`) {
			t.Errorf("JSON %s lacks key %q", b, k)
		}
	}
	if b := mustJSON(t, Process{}); strings.Contains(b, "env") || strings.Contains(b, "kernel") {
		t.Errorf("empty optional fields not omitted: %s", b)
	}
}

func TestListenersMissingProc(t *testing.T) {
	if _, err := Listeners(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Listeners of a missing proc dir: no error")
	}
	if _, err := List(t.Context(), Options{ProcDir: t.TempDir(), Root: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("List with a missing root: no error")
	}
}
