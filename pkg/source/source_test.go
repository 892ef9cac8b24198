package source_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// snapshot walks dir the way the agent does and returns comparable records, keyed by path.
func snapshot(t *testing.T, dir string, treatAsMounts bool) map[string]string {
	t.Helper()
	type ino struct{ dev, ino uint64 }
	groups := map[ino][]string{}
	var entries []fsmeta.Entry
	err := fswalk.Walk(context.Background(), dir, fswalk.Options{Xattrs: true, Digest: true, TreatAsMounts: treatAsMounts},
		func(e *fsmeta.Entry) error {
			entries = append(entries, *e)
			if e.IsHardlinked() {
				k := ino{e.Dev, e.Ino}
				groups[k] = append(groups[k], e.Path)
			}
			return nil
		})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.Path == "." {
			continue
		}
		mtime := e.MTime / 1e9
		if e.Type == fsmeta.TypeSymlink {
			mtime = 0
		}
		rec := fmt.Sprintf("%s %04o %d:%d size=%d %s ->%q dev=%d,%d mtime=%d", e.Type, e.Mode, e.UID, e.GID, e.Size,
			e.Digest, e.Target, e.DevMajor, e.DevMinor, mtime)
		for _, k := range e.XattrNames() {
			rec += fmt.Sprintf(" %s=%x", k, e.Xattrs[k])
		}
		// A name whose other links lie outside the tree (a root hard-linked from another copy)
		// is a plain file in any copy of the tree: only names that share an inode inside count.
		if g := groups[ino{e.Dev, e.Ino}]; e.IsHardlinked() && len(g) > 1 {
			rec += fmt.Sprintf(" links=%q", g)
		}
		out[e.Path] = rec
	}
	return out
}

func dialVM(t *testing.T, vm *testenv.VM, compression string) source.Source {
	t.Helper()
	src, err := source.Open(context.Background(), vm.Addr, source.Options{Token: vm.Token, Compression: compression})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// TestFilesystemStreamEqualsVM streams a running fixture VM's whole filesystem from the agent
// inside it, unpacks the stream with GNU tar (an independent reader), and compares the result
// with the VM's tree: paths, types, modes, owners, sizes, contents, link targets, hard links,
// devices and xattrs, with /proc, /sys, /dev and /run empty and deeper proc/sys dirs kept.
func TestFilesystemStreamEqualsVM(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "tar")
	vm := testenv.StartWebVM(t)
	for _, comp := range []string{"zstd", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			src := dialVM(t, vm, comp)
			ts, err := src.Filesystem(context.Background(), wire.TreeArgs{})
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			tar := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", "-", "-C", out)
			tar.Stdin = ts
			if b, err := tar.CombinedOutput(); err != nil {
				t.Fatalf("GNU tar: %v\n%s", err, b)
			}
			ts.Close()
			res := ts.Result()
			if res.Stats.Entries < 1000 || ts.WireBytes() == 0 {
				t.Errorf("stats %+v, wire bytes %d: implausible", res.Stats, ts.WireBytes())
			}
			want := snapshot(t, vm.Root, true)
			got := snapshot(t, out, false)
			// Inside the VM, dev, proc, run and sys are mount points: the agent sees (and sends) the
			// mounted filesystem's root directory, the host sees the directory underneath.
			for _, mp := range []string{"dev", "proc", "run", "sys"} {
				for _, m := range []map[string]string{want, got} {
					if strings.HasPrefix(m[mp], "dir ") {
						m[mp] = "dir (mount point)"
					}
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("unpacked stream differs from the VM (-vm +stream):\n%s", d)
			}
			for _, p := range []string{"srv/data/proc/1/status", "srv/data/sys/kernel/notes", "opt/tools/with space.txt", "opt/tools/fifo"} {
				if _, ok := got[p]; !ok {
					t.Errorf("%s missing from the stream", p)
				}
			}
			if !strings.Contains(got["opt/tools/captool"], "security.capability=") {
				t.Errorf("captool lost its capability: %s", got["opt/tools/captool"])
			}
			for _, d := range []string{"proc", "sys", "dev", "run"} {
				if _, ok := got[d]; !ok {
					t.Errorf("/%s itself should be kept as a directory", d)
				}
				for p := range got {
					if strings.HasPrefix(p, d+"/") {
						t.Errorf("/%s content leaked into the stream: %s", d, p)
						break
					}
				}
			}
		})
	}
}

// TestRemoteBadInput checks that a wrong token, paths outside the root and unknown requests get
// clear errors and that the agent keeps serving.
func TestRemoteBadInput(t *testing.T) {
	testenv.Short(t)
	vm := testenv.StartWebVM(t)
	ctx := context.Background()
	_, err := source.Open(ctx, vm.Addr, source.Options{Token: []byte("wrong")})
	if !errors.Is(err, proto.ErrAuth) {
		t.Errorf("wrong token: got %v, want ErrAuth", err)
	}
	src := dialVM(t, vm, "")
	for _, p := range []string{"../../etc/shadow", "/../../../etc/passwd"} {
		ts, err := src.Files(ctx, wire.TreeArgs{Paths: []string{p}})
		if err == nil {
			_, err = io.Copy(io.Discard, ts)
			ts.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("files %q: got %v, want an outside-the-root error", p, err)
		}
	}
	hs, err := src.Hash(ctx, []string{"etc/hostname", "../../etc/passwd", "missing"})
	if err != nil {
		t.Fatal(err)
	}
	if hs[0].Err != "" || !strings.HasPrefix(hs[0].Digest, "sha256:") || hs[1].Err == "" || hs[2].Err == "" {
		t.Errorf("hash results: %+v", hs)
	}
	// The agent still answers after all that.
	info, err := src.Info(ctx)
	if err != nil || info.OS.ID != "debian" {
		t.Fatalf("info after bad requests: %v %v", info, err)
	}
}

// TestDirAndTarSources reads a tree through dir: and through a tar: archive of it, and checks
// that hostile archives are refused with the offending entry named.
func TestDirAndTarSources(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "tar")
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "srv/proc"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "srv/proc/x"), []byte("x"), 0o600))
	must(t, os.Symlink("../etc/os-release", filepath.Join(dir, "srv/link")))
	archive := filepath.Join(t.TempDir(), "root.tar.gz")
	if b, err := exec.Command("tar", "-czf", archive, "-C", dir, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	ctx := context.Background()
	for _, spec := range []string{"dir:" + dir, "tar:" + archive} {
		src, err := source.Open(ctx, spec, source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		info, err := src.Info(ctx)
		if err != nil || info.OS.ID != "debian" || info.OS.VersionID != "12" {
			t.Errorf("%s: info %+v %v", spec, info, err)
		}
		var paths []string
		if _, err := src.Tree(ctx, wire.TreeArgs{}, func(e *fsmeta.Entry) error { paths = append(paths, e.Path); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []string{".", "etc", "etc/os-release", "srv", "srv/link", "srv/proc", "srv/proc/x"}
		if d := cmp.Diff(want, paths); d != "" {
			t.Errorf("%s: tree (-want +got):\n%s", spec, d)
		}
		src.Close()
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDepsAnsweredInVMContext asks the agent inside the fixture VM for nginx-light's
// dependencies and checks them against Debian's own dpkg-query on the VM's database.
func TestDepsAnsweredInVMContext(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "dpkg-query")
	vm := testenv.StartWebVM(t)
	src := dialVM(t, vm, "")
	ans, err := src.Deps(context.Background(), wire.DepsArgs{Names: []string{"nginx-light", "not-installed-pkg"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ans) != 2 || !ans[0].Installed || ans[1].Installed {
		t.Fatalf("answers: %+v", ans)
	}
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(vm.Root, "var/lib/dpkg"), "-W", "-f", "${Depends}", "nginx-light").Output()
	if err != nil {
		t.Fatal(err)
	}
	groups := strings.Split(string(out), ", ")
	var depends []wire.Edge
	for _, e := range ans[0].Edges {
		if e.Kind == "depends" {
			depends = append(depends, e)
		}
	}
	if len(depends) != len(groups) {
		t.Fatalf("%d Depends edges, dpkg-query lists %d groups: %q", len(depends), len(groups), groups)
	}
	for i, e := range depends {
		if e.To == "" {
			t.Errorf("dependency %q is unresolved in a consistent VM", groups[i])
		}
		if !strings.Contains(groups[i], e.To) && e.To != "" {
			// Resolved through Provides: the provider must be installed and provide a listed name.
			t.Logf("%q resolved to provider %s", groups[i], e.To)
		}
	}
	closure, err := src.Deps(context.Background(), wire.DepsArgs{Names: []string{"nginx-light"}, Recursive: true})
	if err != nil || len(closure) < 10 {
		t.Fatalf("recursive closure: %d packages, %v", len(closure), err)
	}
}

// TestRemoteNonUTF8Paths asks a real agent, over TCP, for the hash and contents of files whose
// names are not UTF-8: JSON requests must carry their bytes intact.
func TestRemoteNonUTF8Paths(t *testing.T) {
	dir := t.TempDir()
	names := []string{"bad \xff\xfe name", "new\nline", "plain"}
	for i, n := range names {
		must(t, os.WriteFile(filepath.Join(dir, n), []byte(fmt.Sprint("content ", i)), 0o644))
	}
	src := serveAgent(t, dir, "zstd")
	ctx := context.Background()
	hs, err := src.Hash(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		if h.Err != "" || h.Path != names[i] || h.Size != int64(len(fmt.Sprint("content ", i))) {
			t.Errorf("hash %q: %+v", names[i], h)
		}
	}
	ts, err := src.Files(ctx, wire.TreeArgs{Paths: names})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	got := map[string]string{}
	tr := tar.NewReader(ts)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = string(b)
	}
	for i, n := range names {
		if got[n] != fmt.Sprint("content ", i) {
			t.Errorf("files %q: got %q (all: %q)", n, got[n], got)
		}
	}
}

func TestWithDefaultPort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"10.0.0.5", "10.0.0.5:49153"},
		{"vm", "vm:49153"},
		{"vm.example.org", "vm.example.org:49153"},
		{"web_1.lan.", "web_1.lan.:49153"},
		{"::1", "[::1]:49153"},
		{"[::1]", "[::1]:49153"},
		{"agent://10.0.0.5", "agent://10.0.0.5:49153"},
		{"agent://vm", "agent://vm:49153"},
		// unchanged: a port given, other forms, what is no host name
		{"10.0.0.5:1234", "10.0.0.5:1234"},
		{"[::1]:1234", "[::1]:1234"},
		{"agent://vm:1", "agent://vm:1"},
		{"dir:/srv/root", "dir:/srv/root"},
		{"tar:vm.tar", "tar:vm.tar"},
		{"./root", "./root"},
		{"/srv/root", "/srv/root"},
		{"-vm", "-vm"},
		{"a..b", "a..b"},
		{"", ""},
		{"host name", "host name"},
	} {
		if got := source.WithDefaultPort(tc.in); got != tc.want {
			t.Errorf("WithDefaultPort(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
