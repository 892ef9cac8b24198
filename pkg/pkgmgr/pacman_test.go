package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
)

// pacmanTestPkgs are built with bsdtar and installed with Debian's pacman.
var pacmanTestPkgs = []struct {
	name, version string
	asDeps        bool
	lines         []string // .PKGINFO lines beyond name, version, arch
}{
	{"foo", "1:2.0-3", false, []string{
		"pkgbase = foo-base", "pkgdesc = Foo test package", "size = 2048",
		"depend = bar>=1.0", "depend = sh", "depend = libbaz.so=1-64",
		"optdepend = qux: optional things", "provides = foo-virtual=2.0", "provides = libfoo.so=1-64",
	}},
	{"bar", "1.5-1", true, []string{"pkgdesc = Bar", "size = 10", "provides = sh"}},
	// An empty pkgdesc makes pacman write %DESC% followed by an empty line.
	{"baz", "0.9.1-2", true, []string{"pkgdesc = ", "provides = libbaz.so=1-64", "depend = bar"}},
}

// TestReadPacmanReal makes a real pacman local database: packages built with
// bsdtar, installed by pacman -U --dbonly into a scratch root.
func TestReadPacmanReal(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t) // pacman -U refuses to run as another user
	testenv.RequireCommands(t, "pacman", "bsdtar")
	work := t.TempDir()
	root := filepath.Join(work, "root")
	conf := writePacmanConf(t, work, root)
	pacman := func(args ...string) []string {
		return commandLines(t, "pacman", append([]string{"--config", conf, "--noconfirm"}, args...)...)
	}
	for _, p := range pacmanTestPkgs {
		file := buildPacmanPkg(t, work, p.name, p.version, p.lines)
		args := []string{"-U", "--dbonly", "--nodeps", "--nodeps", "--noscriptlet", file}
		if p.asDeps {
			args = append(args, "--asdeps")
		}
		pacman(args...)
	}
	db, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	checkDB(t, db, Pacman)
	auto := map[string]bool{}
	for _, n := range pacman("-Qqd") {
		auto[n] = true
	}
	var want, got []string
	for _, l := range pacman("-Q") {
		name, _, _ := strings.Cut(l, " ")
		want = append(want, fmt.Sprintf("%s auto=%v", l, auto[name]))
	}
	sort.Strings(want)
	for _, p := range db.Packages {
		got = append(got, fmt.Sprintf("%s %s auto=%v", p.Name, p.Version, *p.Auto))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages differ from pacman -Q (-want +got):\n%s", diff)
	}
	for _, p := range db.Packages {
		info := pacmanInfo(pacman("-Qi", p.Name))
		if g := pacmanRelations(p.Provides); g != info["Provides"] {
			t.Errorf("%s: provides %q, pacman -Qi says %q", p.Name, g, info["Provides"])
		}
		var deps []Relation
		for _, d := range p.Depends {
			deps = append(deps, d.Alts...)
		}
		if g := pacmanRelations(deps); g != info["Depends On"] {
			t.Errorf("%s: depends %q, pacman -Qi says %q", p.Name, g, info["Depends On"])
		}
		desc := strings.TrimPrefix(info["Description"], "None") // pacman -Qi shows an empty one as None
		if p.Arch != info["Architecture"] || p.Description != desc {
			t.Errorf("%s: arch %q description %q, pacman -Qi says %q, %q", p.Name, p.Arch, p.Description, info["Architecture"], desc)
		}
	}
	foo := findPackage(t, db.Packages, "foo")
	if foo.Epoch != 1 || foo.UpstreamVersion != "2.0" || foo.Release != "3" || foo.InstalledSize != 2048 || foo.Source != "foo-base" {
		t.Errorf("foo = %+v", foo)
	}
}

func writePacmanConf(t *testing.T, work, root string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, pacmanLocalPath), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(work, "pacman.conf")
	body := fmt.Sprintf("[options]\nRootDir = %[1]s\nDBPath = %[1]s/var/lib/pacman\nCacheDir = %[2]s/cache\n"+
		"LogFile = %[2]s/pacman.log\nGPGDir = %[2]s/gnupg\nHookDir = %[2]s/hooks\nArchitecture = auto\n"+
		"SigLevel = Never\nLocalFileSigLevel = Never\n", root, work)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// buildPacmanPkg writes a package archive: .PKGINFO and one file.
func buildPacmanPkg(t *testing.T, work, name, version string, lines []string) string {
	t.Helper()
	dir := filepath.Join(work, "build-"+name)
	info := append([]string{"pkgname = " + name, "pkgver = " + version, "arch = any", "builddate = 1700000000"}, lines...)
	writeFiles(t, dir, map[string]string{
		".PKGINFO":                      strings.Join(info, "\n") + "\n",
		"usr/share/" + name + "/README": name + "\n",
	})
	file := filepath.Join(work, name+"-"+version+"-any.pkg.tar.zst")
	cmd := exec.Command("bsdtar", "--zstd", "-cf", file, ".PKGINFO", "usr")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bsdtar: %v\n%s", err, out)
	}
	return file
}

// pacmanInfo parses pacman -Qi output into "Key" -> value.
func pacmanInfo(lines []string) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, " : ")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// pacmanRelations renders relations as pacman -Qi lists them.
func pacmanRelations(rels []Relation) string {
	if len(rels) == 0 {
		return "None"
	}
	var s []string
	for _, r := range rels {
		s = append(s, r.Name+r.Op+r.Version)
	}
	return strings.Join(s, "  ")
}

func TestParsePacmanDesc(t *testing.T) {
	in := "%NAME%\nfoo\n\n%VERSION%\n2:1.0.r5.g1234-1.1\n\n%BASE%\nfoo-git\n\n%DESC%\nA tool\n\n" +
		"%ARCH%\nx86_64\n\n%SIZE%\n12345\n\n%REASON%\n1\n\n%LICENSE%\nGPL\nMIT\n\n" +
		"%DEPENDS%\nglibc\nbar>=1.0\nbaz<2\nqux=3-1\nquux>1\nlibx.so=1-64\n\n%OPTDEPENDS%\nzzz: not an edge\n\n" +
		"%PROVIDES%\nfoo-virt=1.0\nlibfoo.so=2-64\n\n"
	got, err := ParsePacmanDesc(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	dep := func(name, op, version string) Dep {
		return Dep{Kind: Depends, Alts: []Relation{{Name: name, Op: op, Version: version}}}
	}
	want := Package{
		Name: "foo", Version: "2:1.0.r5.g1234-1.1", Epoch: 2, UpstreamVersion: "1.0.r5.g1234", Release: "1.1",
		Arch: "x86_64", InstalledSize: 12345, Auto: boolPtr(true), Source: "foo-git", Description: "A tool",
		Depends: []Dep{dep("glibc", "", ""), dep("bar", ">=", "1.0"), dep("baz", "<", "2"),
			dep("qux", "=", "3-1"), dep("quux", ">", "1"), dep("libx.so", "=", "1-64")},
		Provides: []Relation{{Name: "foo-virt", Op: "=", Version: "1.0"}, {Name: "libfoo.so", Op: "=", Version: "2-64"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParsePacmanDesc mismatch (-want +got):\n%s", diff)
	}
	explicit, err := ParsePacmanDesc(strings.NewReader("%NAME%\na\n\n%VERSION%\n1-1\n\n%DESC%\n\n\n%ARCH%\nany\n"))
	if err != nil || explicit.Auto == nil || *explicit.Auto || explicit.Description != "" || explicit.Arch != "any" {
		t.Errorf("no %%REASON%%, empty %%DESC%%: %+v, %v; want Auto false, arch any", explicit, err)
	}
	for _, tt := range []struct {
		in   string
		line int
	}{
		{"stray\n", 1},
		{"%NAME%\na\n\n%NAME%\nb\n", 4},
		{"%VERSION%\n1-1\n", 1},
		{"%NAME%\na\n\n%VERSION%\n1\n", 4},
		{"%NAME%\na\n\n%VERSION%\nx:1-1\n", 4},
		{"%NAME%\na\nb\n\n%VERSION%\n1-1\n", 1},
		{"%NAME%\na\n\n%VERSION%\n1-1\n\n%SIZE%\n-5\n", 8},
		{"%NAME%\na\n\n%VERSION%\n1-1\n\n%REASON%\nyes\n", 8},
		{"%NAME%\na\n\n%VERSION%\n1-1\n\n%DEPENDS%\nok\n>=1\n", 9},
	} {
		_, err := ParsePacmanDesc(strings.NewReader(tt.in))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != tt.line {
			t.Errorf("ParsePacmanDesc(%q) error = %v, want a ParseError at line %d", tt.in, err, tt.line)
		}
	}
}

func TestReadPacmanErrorNamesFile(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		pacmanLocalPath + "/ALPM_DB_VERSION": "9\n",
		pacmanLocalPath + "/a-1-1/desc":      "%NAME%\na\n\n%VERSION%\n1-1\n",
		pacmanLocalPath + "/b-1-1/desc":      "%NAME%\nb\n\n%VERSION%\n1-1\n\n%SIZE%\nbig\n",
	})
	_, err := ReadPacman(root)
	if err == nil || !strings.Contains(err.Error(), "/"+pacmanLocalPath+"/b-1-1/desc:8: ") {
		t.Errorf("error = %v, want one naming b-1-1/desc line 8", err)
	}
}
