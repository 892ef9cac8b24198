package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// vmRecipe is the fixture VM of the builder's tests: a realistic server with some apt-mark noise
// (a top-level package marked auto, dependencies marked manual).
var vmRecipe = testenv.Recipe{
	Suite:    "bookworm",
	Packages: []string{"nginx-light", "postgresql", "python3-flask", "openssh-server"},
	Script: `apt-mark auto nginx-light >/dev/null
apt-mark manual python3-jinja2 libpq5 >/dev/null
apt-mark auto python3-flask >/dev/null`,
}

// baseRecipe is the base image: debootstrap minbase.
var baseRecipe = testenv.Recipe{Suite: "bookworm"}

// archiveCache is the apt archive cache the tests share, across runs, so that only the first
// run downloads packages.
func archiveCache() string { return filepath.Join(testenv.CacheDir(), "apt-archives") }

// fixture is a VM and a base to build from.
type fixture struct {
	vmRoot, baseRoot string
	vm, base         *pkgmgr.DB
	plan             *pkgmgr.Plan
	repo             map[string][]byte
	baseDigest       string
}

// newFixture builds (or finds) the fixture roots and plans the packages layer.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	testenv.Short(t)
	testenv.RequireRoot(t)
	f := &fixture{vmRoot: testenv.Root(t, vmRecipe), baseRoot: testenv.Root(t, baseRecipe)}
	var err error
	if f.vm, err = pkgmgr.ReadDpkg(f.vmRoot); err != nil {
		t.Fatal(err)
	}
	if f.base, err = pkgmgr.ReadDpkg(f.baseRoot); err != nil {
		t.Fatal(err)
	}
	f.replan(t)
	f.baseDigest = "sha256:" + testenv.RootID(baseRecipe)
	return f
}

// replan plans again from f.vm (after a test changed it).
func (f *fixture) replan(t testing.TB) {
	t.Helper()
	var err error
	// debootstrap --include installs no Recommends, as on a VM whose administrator installs
	// with --no-install-recommends: the plan must not follow them either.
	no := false
	f.plan, err = pkgmgr.NewPlan(f.vm, f.base, pkgmgr.OSInfo{ID: "debian", VersionID: "12"}, pkgmgr.PlanOptions{Recommends: &no})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = readRepoFiles(t, f.vmRoot, f.plan.RepoFiles)
}

func (f *fixture) input() Input {
	return Input{BaseRoot: f.baseRoot, BaseDigest: f.baseDigest, VM: f.vm, Base: f.base, Plan: f.plan, RepoFiles: f.repo}
}

// readRepoFiles reads the regular files at paths (a trailing "/" names a directory) under root,
// as the converter fetches them from the agent.
func readRepoFiles(t testing.TB, root string, paths []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range paths {
		_ = filepath.WalkDir(filepath.Join(root, p), func(hp string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(hp)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, hp)
			out["/"+filepath.ToSlash(rel)] = b
			return nil
		})
	}
	return out
}

// testOptions are Options for a test: its own cache directory, the shared archive cache, the
// package manager's output in a file that is logged when the test fails.
func testOptions(t testing.TB, backend string) Options {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			if len(b) > 16000 {
				b = b[len(b)-16000:]
			}
			t.Logf("package manager output (tail):\n%s", b)
		}
	})
	return Options{Backend: backend, WorkDir: dir, CacheDir: filepath.Join(dir, "cache"),
		AptArchiveCache: archiveCache(), Logf: t.Logf, Output: &syncWriter{w: out}}
}

// syncWriter serialises writes from concurrent builds.
type syncWriter struct {
	mu sync.Mutex
	w  *os.File
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// dpkgLines lists a root's packages as dpkg-query prints them, one "name version arch" a line.
func dpkgLines(t testing.TB, root string) map[string]string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W",
		"-f", "${Package} ${Version} ${Architecture} ${db:Status-Abbrev}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query in %s: %v", root, err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != "ii" {
			continue // config-files and the like: not installed
		}
		lines[f[0]+":"+f[2]] = strings.Join(f[:3], " ")
	}
	return lines
}

// showAuto runs apt-mark showauto in root (read-only: it only reads the state).
func showAuto(t testing.TB, root string) []string {
	t.Helper()
	cmd := exec.Command("chroot", root, "apt-mark", "showauto")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("apt-mark showauto in %s: %v", root, err)
	}
	l := strings.Fields(string(out))
	sort.Strings(l)
	return l
}

// importBase imports the base root into the Docker engine once and returns its reference.
func importBase(t testing.TB, root string) string {
	t.Helper()
	testenv.RequireDocker(t)
	ref := "vm2image-test/base:" + strings.ToLower(strings.ReplaceAll(testenv.RootID(baseRecipe), ".", "-"))
	if exec.Command("docker", "image", "inspect", ref).Run() == nil {
		return ref
	}
	tarCmd := exec.Command("tar", "-C", root, "--numeric-owner", "--xattrs", "--xattrs-include=security.capability", "-c", ".")
	imp := exec.Command("docker", "import", "-", ref)
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	var stderr bytes.Buffer
	imp.Stderr = &stderr
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := imp.Run(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, stderr.String())
	}
	if err := tarCmd.Wait(); err != nil {
		t.Fatalf("tar of the base root: %v", err)
	}
	return ref
}

// applyLayer extracts the base root and the layer on top of it into a new directory with GNU
// tar, turning whiteouts into deletions, and returns it.
func applyLayer(t testing.TB, base, layerPath string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "applied")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", "-a", base+"/.", dir)
	list, err := exec.Command("tar", "-tf", layerPath).Output()
	if err != nil {
		t.Fatalf("listing layer: %v", err)
	}
	for _, name := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		b := filepath.Base(name)
		switch {
		case b == ".wh..wh..opq":
			t.Fatalf("opaque whiteout %s in the packages layer: not expected", name)
		case strings.HasPrefix(b, ".wh."):
			t.Logf("whiteout %s", name)
			_ = os.RemoveAll(filepath.Join(dir, filepath.Dir(name), strings.TrimPrefix(b, ".wh.")))
		}
	}
	run(t, "tar", "-C", dir, "--numeric-owner", "--xattrs", "--exclude=.wh.*", "-xpf", layerPath)
	return dir
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// digest is a short content digest for test keys.
func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
