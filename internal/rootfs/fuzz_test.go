package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzResolve resolves fuzzed names through a root holding a fuzzed symlink, with both
// resolvers. Whatever the name and the link, what is opened is a file of the root, never the
// host file next to it; and the user-space resolver agrees with the kernel's openat2.
func FuzzResolve(f *testing.F) {
	for _, s := range [][2]string{
		{"/etc/hostname", "fz"}, {"../host", "fz"}, {"/../../host", "fz/x"}, {"a/../../../", "fz/host"},
		{"/a/b", "fz/../../host"}, {"fz", "fz"}, {"/proc/self/root", "fz/etc"}, {"a/b/", "fz/f"},
		{".", "a/b/../../../../host"}, {"//a//b//", "fz/./f/"}, {"/fz/fz", "fz"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, target, name string) {
		if target == "" || len(target) > 512 || len(name) > 512 {
			return
		}
		for _, s := range []string{target, name} {
			for i := 0; i < len(s); i++ {
				if s[i] == 0 {
					return
				}
			}
		}
		base := t.TempDir()
		must(t, os.WriteFile(filepath.Join(base, "host"), []byte(hostMarker), 0o600))
		root := filepath.Join(base, "root")
		must(t, os.MkdirAll(filepath.Join(root, "a/b"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, "a/b/f"), []byte("f"), 0o644))
		must(t, os.WriteFile(filepath.Join(root, "host"), []byte("in-root"), 0o644))
		must(t, os.Symlink(target, filepath.Join(root, "fz")))
		must(t, os.Symlink("fz", filepath.Join(root, "a/fz")))
		results := map[string]result{}
		for mode, r := range modes(t, root) {
			if b, _ := r.ReadFile(name, 1<<20); string(b) == hostMarker {
				t.Fatalf("%s: target %q name %q read the host file", mode, target, name)
			}
			st, serr := r.Stat(name)
			res := result{ok: serr == nil, err: serr}
			if serr == nil {
				res.ino = st.Sys().(*unix.Stat_t).Ino
			}
			results[mode] = res
		}
		k, u := results["openat2"], results["userspace"]
		if len(results) < 2 || skipCompare(k.err) || skipCompare(u.err) {
			return
		}
		if k.ok != u.ok || k.ino != u.ino {
			t.Fatalf("target %q name %q: openat2 %+v, user space %+v", target, name, k, u)
		}
	})
}

type result struct {
	ok  bool
	ino uint64
	err error
}

// skipCompare: limits the two resolvers count differently (link depth, path length).
func skipCompare(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENAMETOOLONG)
}
