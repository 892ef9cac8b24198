//go:build linux

package procs

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
)

// TestListSelf checks the test's own process and the sockets it opens.
func TestListSelf(t *testing.T) {
	tcp4 := listen(t, "tcp4", "127.0.0.1:0")
	any4 := listen(t, "tcp4", "0.0.0.0:0")
	udp4, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp4.Close()
	type want struct {
		proto, addr string
		port        int
	}
	wants := []want{
		{"tcp", "127.0.0.1", tcp4},
		{"tcp", "0.0.0.0", any4},
		{"udp", "127.0.0.1", udp4.LocalAddr().(*net.UDPAddr).Port},
	}
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Logf("skipping the IPv6 part: the kernel has no IPv6 loopback: %v", err)
	} else {
		defer l.Close()
		u, err := net.ListenPacket("udp6", "[::]:0")
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		wants = append(wants,
			want{"tcp6", "::1", l.Addr().(*net.TCPAddr).Port},
			want{"udp6", "::", u.LocalAddr().(*net.UDPAddr).Port})
	}

	ps := list(t, Options{})
	if !slices.IsSortedFunc(ps, func(a, b Process) int { return a.PID - b.PID }) {
		t.Error("processes are not sorted by pid")
	}
	self := find(t, ps, os.Getpid())
	for _, w := range wants {
		if !hasSocket(self.Listening, w.proto, w.addr, w.port) {
			t.Errorf("own sockets %+v lack %s %s:%d", self.Listening, w.proto, w.addr, w.port)
		}
	}
	if !slices.IsSortedFunc(self.Listening, compareSockets) {
		t.Errorf("sockets not sorted: %+v", self.Listening)
	}
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	wd, _ := os.Getwd()
	switch {
	case self.PPID != os.Getppid():
		t.Errorf("ppid = %d, want %d", self.PPID, os.Getppid())
	case self.UID != os.Getuid() || self.EUID != os.Geteuid() || self.GID != os.Getgid():
		t.Errorf("ids = %d/%d/%d", self.UID, self.EUID, self.GID)
	case !slices.Equal(self.Argv, os.Args):
		t.Errorf("argv = %q, want %q", self.Argv, os.Args)
	case self.Exe != exe || self.Cwd != wd:
		t.Errorf("exe, cwd = %q, %q; want %q, %q", self.Exe, self.Cwd, exe, wd)
	case self.Kernel || self.StartTime == 0 || self.Env != nil:
		t.Errorf("kernel %v, start %d, env %d entries", self.Kernel, self.StartTime, len(self.Env))
	}
	if os.Getuid() == 0 && self.User != "root" {
		t.Errorf("user = %q, want root", self.User)
	}

	for _, p := range list(t, Options{ListeningOnly: true}) {
		if len(p.Listening) == 0 {
			t.Errorf("ListeningOnly returned pid %d without sockets", p.PID)
		}
	}
	if kt, ok := kernelThread(ps); ok && (kt.Argv != nil || kt.Exe != "") {
		t.Errorf("kernel thread %d has argv %q exe %q", kt.PID, kt.Argv, kt.Exe)
	}
}

func kernelThread(ps []Process) (Process, bool) {
	for _, p := range ps {
		if p.Kernel {
			return p, true
		}
	}
	return Process{}, false
}

func listen(t *testing.T, network, addr string) int {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// TestListChild runs the helper as nobody with odd arguments and an
// environment, and checks everything List reports about it.
func TestListChild(t *testing.T) {
	testenv.RequireRoot(t)
	bin := listenerBin(t)
	wd := mkdir0755(t)
	cmd := exec.Command(bin, "listen=tcp4:127.0.0.1:0", "", "with space", "--x=y", "")
	cmd.Dir = wd
	cmd.Env = []string{"VM2IMAGE_TEST_SECRET=s3cret", "EMPTY="}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	addrs := startListener(t, cmd)

	p := find(t, list(t, Options{}), cmd.Process.Pid)
	if p.PPID != os.Getpid() || p.UID != 65534 || p.EUID != 65534 || p.GID != 65534 {
		t.Errorf("ppid %d uid %d euid %d gid %d", p.PPID, p.UID, p.EUID, p.GID)
	}
	if passwdHas(t, "/etc/passwd", "nobody", "65534") && p.User != "nobody" {
		t.Errorf("user = %q, want nobody", p.User)
	}
	if passwdHas(t, "/etc/group", "nogroup", "65534") && p.Group != "nogroup" {
		t.Errorf("group = %q, want nogroup", p.Group)
	}
	if !slices.Equal(p.Argv, cmd.Args) {
		t.Errorf("argv = %q, want %q", p.Argv, cmd.Args)
	}
	if p.Exe != bin || p.Cwd != wd || p.Comm != "listener" {
		t.Errorf("exe %q cwd %q comm %q; want %q %q listener", p.Exe, p.Cwd, p.Comm, bin, wd)
	}
	if !hasSocket(p.Listening, "tcp", "127.0.0.1", addrs[0].Port) {
		t.Errorf("sockets %+v lack tcp 127.0.0.1:%d", p.Listening, addrs[0].Port)
	}
	if p.Env != nil {
		t.Errorf("env reported without Options.Env: %q", p.Env)
	}
	p = find(t, list(t, Options{Env: true}), cmd.Process.Pid)
	if !slices.Equal(p.Env, cmd.Env) {
		t.Errorf("env = %q, want %q", p.Env, cmd.Env)
	}
}

// TestListRoot chroots the static helper into a tiny root with its own
// passwd and checks that Options.Root selects it alone.
func TestListRoot(t *testing.T) {
	testenv.RequireRoot(t)
	bin := listenerBin(t)
	root := mkdir0755(t)
	writeFile(t, filepath.Join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nsvc:x:4242:4242:svc:/srv:/bin/false\n")
	writeFile(t, filepath.Join(root, "etc", "group"), "root:x:0:\nsvc:x:4242:\n")
	if err := os.MkdirAll(filepath.Join(root, "srv", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, bin, filepath.Join(root, "listener"))
	cmd := exec.Command("/listener", "listen=tcp4:127.0.0.1:0")
	cmd.Dir = "/srv/app"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: 4242, Gid: 4242},
	}
	addrs := startListener(t, cmd)
	pid := cmd.Process.Pid

	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{root, link} {
		ps := list(t, Options{Root: r})
		if has(ps, os.Getpid()) {
			t.Errorf("Root %s lists the test process, which is not chrooted", r)
		}
		p := find(t, ps, pid)
		if p.User != "svc" || p.Group != "svc" || p.Exe != "/listener" || p.Cwd != "/srv/app" {
			t.Errorf("Root %s: user %q group %q exe %q cwd %q", r, p.User, p.Group, p.Exe, p.Cwd)
		}
		if !hasSocket(p.Listening, "tcp", "127.0.0.1", addrs[0].Port) {
			t.Errorf("Root %s: sockets %+v", r, p.Listening)
		}
	}
	ps := list(t, Options{Root: "/"})
	find(t, ps, os.Getpid())
	p := find(t, ps, pid)
	if p.Exe != filepath.Join(root, "listener") {
		t.Errorf("Root /: exe %q", p.Exe)
	}
	if !passwdHas(t, "/etc/passwd", "svc", "4242") && p.User != "4242" {
		t.Errorf("Root /: user %q, want 4242 (the host has no such user)", p.User)
	}
}

// TestListNetns checks that sockets of another network namespace are found.
func TestListNetns(t *testing.T) {
	testenv.RequireRoot(t)
	bin := listenerBin(t)
	cmd := exec.Command(bin, "listen=tcp4:0.0.0.0:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	probe := exec.Command("/bin/true")
	probe.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := probe.Run(); err != nil {
		testenv.Skip(t, "cannot create a network namespace: "+err.Error())
	}
	addrs := startListener(t, cmd)
	p := find(t, list(t, Options{}), cmd.Process.Pid)
	if !hasSocket(p.Listening, "tcp", "0.0.0.0", addrs[0].Port) {
		t.Fatalf("sockets %+v lack tcp 0.0.0.0:%d", p.Listening, addrs[0].Port)
	}
	f, err := os.Open("/proc/self/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	own, err := ParseNetFile(f, "tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range own {
		if s.Inode == p.Listening[0].Inode {
			t.Errorf("socket %+v is in the test's namespace too", s)
		}
	}
}

// TestListVanishing lists while children start and die; List never fails.
func TestListVanishing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				cmd := exec.Command("sleep", "0.01")
				if err := cmd.Start(); err != nil {
					continue
				}
				if i%2 == 0 {
					cmd.Process.Kill()
				}
				cmd.Wait()
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	n := 0
	for ; n < 10 || time.Now().Before(deadline); n++ {
		if _, err := List(context.Background(), Options{Env: true}); err != nil {
			t.Errorf("List %d: %v", n, err)
		}
	}
	cancel()
	wg.Wait()
	t.Logf("%d lists while children came and went", n)
}

func TestListCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := List(ctx, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("List with canceled context: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
