package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// modes opens dir with each resolver this kernel has: openat2 and the user-space fallback.
func modes(t *testing.T, dir string) map[string]*Root {
	t.Helper()
	out := map[string]*Root{}
	for name, us := range map[string]bool{"openat2": false, "userspace": true} {
		r, err := open(dir, us)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if name == "openat2" && r.userspace {
			t.Log("this kernel has no openat2: only the user-space resolver is tested")
			continue
		}
		out[name] = r
	}
	return out
}

const hostMarker = "HOST-MARKER-d41d8cd9"

// hostileRoot builds a VM root next to a host file holding hostMarker. The root's links try
// every way out: absolute and relative targets, "..", links to host paths, loops.
func hostileRoot(t *testing.T) (root, secret string) {
	t.Helper()
	base := t.TempDir()
	secret = filepath.Join(base, "host-secret")
	must(t, os.WriteFile(secret, []byte(hostMarker), 0o600))
	root = filepath.Join(base, "vm")
	for _, d := range []string{"etc", "usr/lib", "var/lib/dpkg", "a/b/c"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	files := map[string]string{
		"etc/realhostname":   "vmhost\n",
		"usr/lib/os-release": "ID=debian\n",
		"a/b/c/deep":         "deep\n",
		"host-secret":        "in-root-secret\n", // what a clamped "../host-secret" must find
	}
	for p, c := range files {
		must(t, os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
	}
	rel, err := filepath.Rel(filepath.Join(root, "etc"), secret)
	must(t, err)
	links := map[string]string{
		"etc/hostname":    "/etc/realhostname",
		"etc/os-release":  "../usr/lib/os-release",
		"etc/up":          "../../../../../../../etc/realhostname",
		"etc/abs-host":    secret,
		"etc/rel-host":    rel,
		"etc/loop1":       "loop2",
		"etc/loop2":       "loop1",
		"etc/self":        "self",
		"etc/empty-dir":   "/a/b/",
		"dirlink":         "/a/b",
		"a/b/c/up2":       "../../../etc/realhostname",
		"a/b/c/up-abs":    "/../../etc/realhostname",
		"etc/zero":        "/dev/zero",
		"etc/dotdot":      "..",
		"var/lib/dpkg/st": "/etc/abs-host",
	}
	for p, target := range links {
		must(t, os.Symlink(target, filepath.Join(root, p)))
	}
	return root, secret
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolveChrootSemantics(t *testing.T) {
	root, _ := hostileRoot(t)
	cases := []struct {
		name, want string
		err        error
	}{
		{"etc/hostname", "vmhost\n", nil},
		{"/etc/hostname", "vmhost\n", nil},
		{"etc/os-release", "ID=debian\n", nil},
		{"etc/up", "vmhost\n", nil},
		{"../../../etc/realhostname", "vmhost\n", nil},
		{"dirlink/c/deep", "deep\n", nil},
		{"dirlink/c/up2", "vmhost\n", nil},
		{"a/b/c/up-abs", "vmhost\n", nil},
		{"etc/dotdot/etc/hostname", "vmhost\n", nil},
		{"etc/rel-host", "in-root-secret\n", nil}, // "../../host-secret" stops at the root
		{"etc/abs-host", "", fs.ErrNotExist},      // the host path, looked up in the root
		{"var/lib/dpkg/st", "", fs.ErrNotExist},
		{"etc/zero", "", fs.ErrNotExist},
		{"etc/loop1", "", unix.ELOOP},
		{"etc/self", "", unix.ELOOP},
		{"etc/realhostname/", "", unix.ENOTDIR},
		{"etc/realhostname/x", "", unix.ENOTDIR},
		{"etc", "", ErrNotRegular},
		{"etc/empty-dir", "", ErrNotRegular},
		{"nonexistent", "", fs.ErrNotExist},
	}
	for mode, r := range modes(t, root) {
		for _, c := range cases {
			b, err := r.ReadFile(c.name, ConfigLimit)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Errorf("%s: %s: got %q, %v; want error %v", mode, c.name, b, err, c.err)
				}
				continue
			}
			if err != nil || string(b) != c.want {
				t.Errorf("%s: %s: got %q, %v; want %q", mode, c.name, b, err, c.want)
			}
		}
	}
}

// TestErrorsNameThePath: a refusal says which VM path and why.
func TestErrorsNameThePath(t *testing.T) {
	root, _ := hostileRoot(t)
	for mode, r := range modes(t, root) {
		_, err := r.ReadFile("etc", ConfigLimit)
		if err == nil || !strings.Contains(err.Error(), "/etc") || !strings.Contains(err.Error(), "a directory") {
			t.Errorf("%s: %v", mode, err)
		}
	}
}

// TestSpecialFilesRefused: a fifo (which would block a plain open), a socket and a device are
// refused before they are opened.
func TestSpecialFilesRefused(t *testing.T) {
	root := t.TempDir()
	must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	must(t, os.Symlink("/fifo", filepath.Join(root, "fifolink")))
	ln, err := net.Listen("unix", filepath.Join(root, "sock"))
	must(t, err)
	defer ln.Close()
	names := []string{"fifo", "fifolink", "sock"}
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(root, "zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
		names = append(names, "zero")
	} else {
		t.Log("not root: no device node made")
	}
	for mode, r := range modes(t, root) {
		for _, n := range names {
			done := make(chan error, 1)
			go func() { _, err := r.ReadFile(n, ConfigLimit); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrNotRegular) {
					t.Errorf("%s: %s: %v, want ErrNotRegular", mode, n, err)
				}
			case <-time.After(10 * time.Second): // a deadlock guard, not a timing assertion
				t.Fatalf("%s: reading %s blocked", mode, n)
			}
		}
	}
}

func TestBounds(t *testing.T) {
	root := t.TempDir()
	must(t, os.WriteFile(filepath.Join(root, "exact"), make([]byte, 100), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "over"), make([]byte, 101), 0o644))
	sparse, err := os.Create(filepath.Join(root, "sparse"))
	must(t, err)
	must(t, sparse.Truncate(2<<30))
	sparse.Close()
	for mode, r := range modes(t, root) {
		if b, err := r.ReadFile("exact", 100); err != nil || len(b) != 100 {
			t.Errorf("%s: exact: %d bytes, %v", mode, len(b), err)
		}
		for _, n := range []string{"over", "sparse"} {
			_, err := r.ReadFile(n, 100)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "/"+n) || !strings.Contains(err.Error(), "100 bytes") {
				t.Errorf("%s: %s: %v", mode, n, err)
			}
		}
	}
}

// TestBoundHoldsWhileGrowing: a file that grows after it was opened is cut at the bound.
func TestBoundHoldsWhileGrowing(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "grows")
	must(t, os.WriteFile(p, []byte("small"), 0o644))
	r, err := Open(root)
	must(t, err)
	defer r.Close()
	f, err := r.OpenBounded("grows", 1000)
	must(t, err)
	defer f.Close()
	must(t, os.WriteFile(p, make([]byte, 5000), 0o644))
	n, err := io.Copy(io.Discard, f)
	if !errors.Is(err, ErrTooLarge) || n != 1000 {
		t.Fatalf("read %d bytes, %v; want 1000 and ErrTooLarge", n, err)
	}
}

// TestMagicLinksStayInside serves /proc/self as a root: its "root", "cwd" and "fd/N" entries
// are magic links to the host's directories and files, which must not be reached.
func TestMagicLinksStayInside(t *testing.T) {
	host, err := os.ReadFile("/etc/hostname")
	if err != nil {
		t.Skip("the host has no /etc/hostname to compare against")
	}
	f, err := os.Open("/etc/hostname")
	must(t, err)
	defer f.Close()
	fdName := "fd/" + strconv.Itoa(int(f.Fd()))
	for mode, r := range modes(t, "/proc/self") {
		for _, n := range []string{"root/etc/hostname", "cwd/../../../etc/hostname", fdName, "exe"} {
			b, err := r.ReadFile(n, 1<<30)
			if err == nil {
				t.Errorf("%s: %s read through a magic link: %q", mode, n, b)
			} else if len(host) > 0 && strings.Contains(err.Error(), string(host)) {
				t.Errorf("%s: %s: error holds the host file: %v", mode, n, err)
			}
		}
	}
}

func TestStatAndReadDir(t *testing.T) {
	root, _ := hostileRoot(t)
	for mode, r := range modes(t, root) {
		if !r.IsDir("dirlink") || !r.IsFile("etc/hostname") || r.IsFile("etc/abs-host") || r.IsDir("etc/hostname") {
			t.Errorf("%s: IsDir/IsFile wrong", mode)
		}
		fi, err := r.Lstat("etc/hostname")
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s: Lstat: %v %v", mode, fi, err)
		}
		ents, err := r.ReadDir("dirlink")
		if err != nil || len(ents) != 1 || ents[0].Name() != "c" {
			t.Errorf("%s: ReadDir(dirlink): %v %v", mode, ents, err)
		}
		if _, err := r.ReadDir("etc/abs-host"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: ReadDir through a host link: %v", mode, err)
		}
	}
}
