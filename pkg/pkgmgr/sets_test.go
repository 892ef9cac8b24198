package pkgmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
)

// spkg is a package for set tables.
func spkg(name, version, arch string) Package {
	return Package{Name: name, Version: version, Arch: arch, UpstreamVersion: version}
}

func TestCompareSets(t *testing.T) {
	vm := &DB{Manager: Dpkg, Packages: []Package{
		spkg("bash", "5.2-1", "amd64"),
		spkg("libc6", "2.36-9", "amd64"), spkg("libc6", "2.36-9", "i386"),
		spkg("newpkg", "1.0", "amd64"),
		spkg("tzdata", "2024a-0", "all"),
		spkg("upgraded", "2.0-1", "amd64"),
		spkg("zero", "1.0-0", "amd64"),
		spkg("went-all", "3.0", "all"),
	}}
	base := &DB{Manager: Dpkg, Packages: []Package{
		spkg("bash", "5.2-1", "amd64"),
		spkg("libc6", "2.36-9", "amd64"),
		spkg("onlybase", "1", "amd64"),
		spkg("tzdata", "2024a-0", "all"),
		spkg("upgraded", "1.0-1", "amd64"),
		spkg("zero", "1.0", "amd64"), // the same dpkg version as 1.0-0
		spkg("went-all", "2.0", "amd64"),
	}}
	s := CompareSets(vm, base)
	names := func(pkgs []Package) []string {
		var out []string
		for _, p := range pkgs {
			out = append(out, p.Name+":"+p.Arch)
		}
		return out
	}
	if d := cmp.Diff([]string{"libc6:i386", "newpkg:amd64", "upgraded:amd64", "went-all:all"}, names(s.Install)); d != "" {
		t.Errorf("Install (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"onlybase:amd64"}, names(s.Remove)); d != "" {
		t.Errorf("Remove (-want +got):\n%s", d)
	}
	wantUp := []Change{
		{Name: "upgraded", Arch: "amd64", VMVersion: "2.0-1", BaseVersion: "1.0-1"},
		{Name: "went-all", Arch: "all", VMVersion: "3.0", BaseVersion: "2.0"},
	}
	if d := cmp.Diff(wantUp, s.Upgrade); d != "" {
		t.Errorf("Upgrade (-want +got):\n%s", d)
	}
	if s.Same != 4 {
		t.Errorf("Same = %d, want 4 (bash, libc6:amd64, tzdata, zero)", s.Same)
	}
}

func TestCompareSetsInstallOnly(t *testing.T) {
	// Two kernels of one name and arch: each pairs once.
	vm := &DB{Manager: RPM, Packages: []Package{
		spkg("kernel-core", "5.14.0-1", "x86_64"), spkg("kernel-core", "5.14.0-2", "x86_64"), spkg("tzdata", "2024a-1", "noarch"),
	}}
	base := &DB{Manager: RPM, Packages: []Package{spkg("kernel-core", "5.14.0-2", "x86_64"), spkg("tzdata", "2024a-1", "noarch")}}
	s := CompareSets(vm, base)
	if len(s.Install) != 1 || s.Install[0].Version != "5.14.0-1" || len(s.Upgrade) != 0 || s.Same != 2 || len(s.Remove) != 0 {
		t.Errorf("CompareSets = %+v", s)
	}
	if s := CompareSets(vm, nil); len(s.Install) != 3 || s.Same != 0 {
		t.Errorf("CompareSets(vm, nil) = %+v", s)
	}
}

var versionLine = regexp.MustCompile(`(?m)^(Version: \S+)$`)

// filteredBase writes a dpkg status file holding a deterministic part of src's paragraphs
// (some with another version) plus packages of its own, and returns its root.
func filteredBase(t *testing.T, src string) string {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		h := fnv.New32a()
		h.Write([]byte(para[:strings.IndexByte(para+"\n", '\n')]))
		switch v := h.Sum32() % 10; {
		case v < 4: // absent from the base: the VM installs it
		case v == 4: // another version in the base
			out = append(out, versionLine.ReplaceAllString(para, "${1}+old"))
		default:
			out = append(out, para)
		}
	}
	out = append(out,
		"Package: only-in-base\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nDescription: x",
		"Package: only-in-base-too\nStatus: install ok installed\nArchitecture: all\nVersion: 2\nDescription: y")
	root := t.TempDir()
	writeFiles(t, root, map[string]string{dpkgStatusPath: strings.Join(out, "\n\n") + "\n"})
	return root
}

// dpkgQueryLines lists "name version arch" for the packages whose files are on disk, sorted,
// in a file for comm.
func dpkgQueryLines(t *testing.T, admindir, format, file string) {
	t.Helper()
	lines := commandLines(t, "dpkg-query", "--admindir="+admindir, "-W", "-f", format+" ${db:Status-Status}\n")
	var keep []string
	for _, l := range lines {
		i := strings.LastIndexByte(l, ' ')
		if dpkgStates[l[i+1:]] {
			keep = append(keep, l[:i])
		}
	}
	sort.Strings(keep)
	if err := os.WriteFile(file, []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCompareSetsDpkgOracle compares this machine's dpkg database with a filtered copy and
// checks the sets against comm(1) over dpkg-query's lines.
func TestCompareSetsDpkgOracle(t *testing.T) {
	testenv.RequireCommands(t, "dpkg-query", "comm")
	if !isFile("/" + dpkgStatusPath) {
		testenv.Skip(t, "this machine has no dpkg database")
	}
	baseRoot := filteredBase(t, "/"+dpkgStatusPath)
	vm, err := ReadDpkg("/")
	if err != nil {
		t.Fatal(err)
	}
	base, err := ReadDpkg(baseRoot)
	if err != nil {
		t.Fatal(err)
	}
	s := CompareSets(vm, base)
	dir := t.TempDir()
	f := func(n string) string { return filepath.Join(dir, n) }
	dpkgQueryLines(t, "/var/lib/dpkg", "${Package} ${Version} ${Architecture}", f("vm"))
	dpkgQueryLines(t, filepath.Join(baseRoot, "var/lib/dpkg"), "${Package} ${Version} ${Architecture}", f("base"))
	dpkgQueryLines(t, "/var/lib/dpkg", "${Package} ${Architecture}", f("vm-na"))
	dpkgQueryLines(t, filepath.Join(baseRoot, "var/lib/dpkg"), "${Package} ${Architecture}", f("base-na"))
	comm := func(flag, a, b string) []string {
		cmd := exec.Command("comm", flag, f(a), f(b))
		cmd.Env = append(os.Environ(), "LC_ALL=C") // the files are sorted bytewise
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("comm: %v", err)
		}
		lines := strings.Fields(strings.ReplaceAll(string(out), " ", "_"))
		sort.Strings(lines)
		return lines
	}
	render := func(pkgs []Package, withVersion bool) []string {
		var out []string
		for _, p := range pkgs {
			if withVersion {
				out = append(out, p.Name+"_"+p.Version+"_"+p.Arch)
			} else {
				out = append(out, p.Name+"_"+p.Arch)
			}
		}
		sort.Strings(out)
		return out
	}
	if d := cmp.Diff(comm("-23", "vm", "base"), render(s.Install, true)); d != "" {
		t.Errorf("Install differs from comm -23 (-comm +ours):\n%s", d)
	}
	if d := cmp.Diff(comm("-13", "vm-na", "base-na"), render(s.Remove, false)); d != "" {
		t.Errorf("Remove differs from comm -13 (-comm +ours):\n%s", d)
	}
	if len(s.Upgrade) == 0 || len(s.Install) == len(s.Upgrade) || s.Same == 0 {
		t.Errorf("the filtered base should give new, upgraded and same packages: %d, %d, %d", len(s.Install), len(s.Upgrade), s.Same)
	}
	t.Logf("VM %d packages, base %d: install %d (upgrade %d), remove %d, same %d",
		len(vm.Packages), len(base.Packages), len(s.Install), len(s.Upgrade), len(s.Remove), s.Same)
}

func TestSetKey(t *testing.T) {
	pkgs := []Package{spkg("b", "2", "amd64"), spkg("a", "1:1.0-1", "all"), spkg("b", "2", "amd64")}
	// The documented input, built by hand.
	text := "vm2image package set v1\nbase sha256:abc\nmanager dpkg\nrepo sha256:def\na=1:1.0-1/all\nb=2/amd64\n"
	sum := sha256.Sum256([]byte(text))
	want := hex.EncodeToString(sum[:])
	if got := SetKey("sha256:abc", Dpkg, pkgs, "sha256:def"); got != want {
		t.Errorf("SetKey = %s, want %s", got, want)
	}
	reversed := []Package{pkgs[1], pkgs[0]}
	if got := SetKey("sha256:abc", Dpkg, reversed, "sha256:def"); got != want {
		t.Errorf("SetKey depends on order")
	}
	for i, other := range []string{
		SetKey("sha256:abd", Dpkg, pkgs, "sha256:def"),
		SetKey("sha256:abc", RPM, pkgs, "sha256:def"),
		SetKey("sha256:abc", Dpkg, pkgs, "sha256:deg"),
		SetKey("sha256:abc", Dpkg, pkgs[1:2], "sha256:def"),
		SetKey("sha256:abc", Dpkg, []Package{spkg("a", "1:1.0-1", "all"), spkg("b", "2", "i386")}, "sha256:def"),
	} {
		if other == want {
			t.Errorf("variant %d has the same key", i)
		}
	}
}
