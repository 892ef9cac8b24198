package vmread

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInfoReadsInsideRoot: Info resolves the VM's links as a chroot would, never reads a host
// file through them, and reports (without blocking or failing) a hostname that is a fifo or
// too large.
func TestInfoReadsInsideRoot(t *testing.T) {
	base := t.TempDir()
	secret := filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("hostsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, setup func(root string)) string {
		root := filepath.Join(base, name)
		for _, d := range []string{"etc", "usr/lib"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=fedora\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/usr/lib/os-release", filepath.Join(root, "etc/os-release")); err != nil {
			t.Fatal(err)
		}
		setup(root)
		return root
	}
	cases := []struct {
		name, hostname, problem string
		setup                   func(root string)
	}{
		{"host-link", "", "", func(root string) { os.Symlink(secret, filepath.Join(root, "etc/hostname")) }},
		{"in-root-link", "vmname", "", func(root string) {
			os.WriteFile(filepath.Join(root, "etc/name"), []byte("vmname\n"), 0o644)
			os.Symlink("/etc/name", filepath.Join(root, "etc/hostname"))
		}},
		{"fifo", "", "not a regular file", func(root string) { unix.Mkfifo(filepath.Join(root, "etc/hostname"), 0o644) }},
		{"huge", "", "file too large", func(root string) {
			f, _ := os.Create(filepath.Join(root, "etc/hostname"))
			f.Truncate(1 << 31)
			f.Close()
		}},
		{"not-a-name", "", "not a hostname", func(root string) {
			os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("a b\n"), 0o644)
		}},
	}
	for _, c := range cases {
		a, err := New(Options{Root: mk(c.name, c.setup)})
		if err != nil {
			t.Fatal(err)
		}
		info, err := a.Info(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if info.Hostname != c.hostname || info.OS.ID != "fedora" {
			t.Errorf("%s: hostname %q, os %q; want %q, fedora", c.name, info.Hostname, info.OS.ID, c.hostname)
		}
		var probs []string
		for _, p := range info.Problems {
			probs = append(probs, p.Path+": "+p.Err)
		}
		got := strings.Join(probs, "; ")
		if c.problem == "" && got != "" || c.problem != "" && !strings.Contains(got, "/etc/hostname") || !strings.Contains(got, c.problem) {
			t.Errorf("%s: problems %q, want one naming /etc/hostname: %q", c.name, got, c.problem)
		}
	}
}
