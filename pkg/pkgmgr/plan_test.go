package pkgmgr

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// keyPackage finds the install-set package a Pins key names: "name", "name:arch",
// "key@version".
func keyPackage(t *testing.T, install []Package, key string) int {
	t.Helper()
	key, version, _ := strings.Cut(key, "@")
	name, arch, qualified := strings.Cut(key, ":")
	for i, p := range install {
		if p.Name == name && (!qualified || p.Arch == arch) && (version == "" || p.Version == version) {
			return i
		}
	}
	t.Fatalf("key %q names no install-set package", key)
	return -1
}

// unreached returns the install-set packages that the plan's roots do not reach through the
// VM's own graph (NewGraph with the given Recommends setting) restricted to the install set.
func unreached(t *testing.T, vm *DB, install []Package, roots []string, recommends bool) []string {
	t.Helper()
	g := NewGraph(vm, GraphOptions{Recommends: recommends})
	inSet := map[int]bool{}
	vmIndex := map[string]int{}
	for v, p := range vm.Packages {
		vmIndex[exactKey(p)] = v
	}
	for _, p := range install {
		inSet[vmIndex[exactKey(p)]] = true
	}
	seen := map[int]bool{}
	var stack []int
	for _, k := range roots {
		stack = append(stack, vmIndex[exactKey(install[keyPackage(t, install, k)])])
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] || !inSet[v] {
			continue
		}
		seen[v] = true
		stack = append(stack, g.Out[v]...)
	}
	var missing []string
	for v := range inSet {
		if !seen[v] {
			missing = append(missing, vm.Packages[v].Name+":"+vm.Packages[v].Arch)
		}
	}
	sort.Strings(missing)
	return missing
}

// installStep returns the plan's (first) install step.
func installStep(t *testing.T, p *Plan) Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Name == stepInstall {
			return s
		}
	}
	t.Fatalf("plan has no install step: %+v", p.Steps)
	return Step{}
}

// checkPlan checks what every plan must hold: pins for the whole install set at the VM's
// versions, the counts, the roots on the install line and reaching the whole install set
// through the VM's graph with the plan's own Recommends setting.
func checkPlan(t *testing.T, vm, base *DB, p *Plan) []Package {
	t.Helper()
	var install []Package
	for _, pkg := range CompareSets(vm, base).Install {
		if plannable(vm.Manager, pkg) {
			install = append(install, pkg)
		}
	}
	if p.RootsBefore != len(install) || p.RootsAfter != len(p.Roots) || len(p.Pins) != len(install) {
		t.Errorf("counts: before %d after %d roots %d pins %d, install set %d", p.RootsBefore, p.RootsAfter, len(p.Roots), len(p.Pins), len(install))
	}
	for k, v := range p.Pins {
		if got := install[keyPackage(t, install, k)].Version; got != v {
			t.Errorf("pin %s = %s, VM has %s", k, v, got)
		}
	}
	if miss := unreached(t, vm, install, p.Roots, p.Recommends); len(miss) > 0 {
		t.Errorf("roots do not reach %d install-set packages: %v", len(miss), miss)
	}
	for _, c := range CompareSets(vm, base).Upgrade {
		k := c.Name
		if !slices.ContainsFunc(p.Roots, func(r string) bool { return r == k || strings.HasPrefix(r, k+":") }) {
			t.Errorf("upgraded package %s is not named", k)
		}
	}
	if len(install) > 0 {
		argv := installStep(t, p).Argv
		for i, k := range p.Roots {
			spec := argv[len(argv)-len(p.Roots)+i]
			if p.Frontend != feYum && !strings.Contains(spec, strings.Split(k, ":")[0]) {
				t.Errorf("install line %v does not end with the roots %v", argv, p.Roots)
				break
			}
		}
	}
	return install
}

// journalDB is the shape the 2014 prototype lost: packages only ever recommended, one pair in
// a cycle.
func journalDB() (vm, base *DB) {
	basePkgs := []Package{gpkg("base-files", nil), gpkg("libc6", nil)}
	vmPkgs := append(slices.Clone(basePkgs),
		gpkg("ubuntu-standard", []string{"libc6", "?language-pack-en", "?language-pack-gnome-en", "?tasksel"}),
		gpkg("language-pack-en", []string{"language-pack-en-base"}),
		gpkg("language-pack-en-base", []string{"libc6"}),
		gpkg("language-pack-gnome-en", []string{"language-pack-gnome-en-base", "language-pack-en"}),
		gpkg("language-pack-gnome-en-base", nil),
		gpkg("tasksel", []string{"tasksel-data"}),
		gpkg("tasksel-data", []string{"tasksel"}),
	)
	vm = &DB{Manager: Dpkg, Packages: vmPkgs}
	base = &DB{Manager: Dpkg, Packages: basePkgs}
	sortPackages(vm.Packages)
	return vm, base
}

func TestNewPlanJournalLanguagePacks(t *testing.T) {
	vm, base := journalDB()
	on, off := true, false
	pOn, err := NewPlan(vm, base, OSInfo{ID: "ubuntu"}, PlanOptions{Recommends: &on})
	if err != nil {
		t.Fatal(err)
	}
	pOff, err := NewPlan(vm, base, OSInfo{ID: "ubuntu"}, PlanOptions{Recommends: &off})
	if err != nil {
		t.Fatal(err)
	}
	install := checkPlan(t, vm, base, pOn)
	checkPlan(t, vm, base, pOff)
	if d := cmp.Diff([]string{"ubuntu-standard"}, pOn.Roots); d != "" {
		t.Errorf("roots with Recommends (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"language-pack-gnome-en", "tasksel", "tasksel-data", "ubuntu-standard"}, pOff.Roots); d != "" {
		t.Errorf("roots without Recommends (-want +got):\n%s", d)
	}
	if a := installStep(t, pOn).Argv; !slices.Contains(a, "--install-recommends") || slices.Contains(a, "--no-install-recommends") {
		t.Errorf("Recommends on, install line %v", a)
	}
	if a := installStep(t, pOff).Argv; !slices.Contains(a, "--no-install-recommends") {
		t.Errorf("Recommends off, install line %v", a)
	}
	// The journal's loss: the roots of a graph with Recommends, installed without them.
	lost := unreached(t, vm, install, pOn.Roots, false)
	if len(lost) != 6 {
		t.Errorf("mixing the settings should lose the six packages the journal lost, lost %v", lost)
	}
	if pOn.RootsBefore != 7 || pOn.RootsAfter != 1 || pOff.RootsAfter != 4 {
		t.Errorf("counts %d -> %d (on), %d (off)", pOn.RootsBefore, pOn.RootsAfter, pOff.RootsAfter)
	}
}

func TestPlanRootsRules(t *testing.T) {
	base := []Package{gpkg("libc6", nil), gpkg("mawk", nil, "awk"), gpkg("old", nil)}
	old2 := gpkg("old", nil)
	old2.Version = "2"
	tests := []struct {
		name string
		m    Manager
		vm   []Package
		want []string
	}{
		{"first alternative installed: an edge", Dpkg, []Package{gpkg("app", []string{"x|y"}), gpkg("x", nil)}, []string{"app"}},
		{"a later alternative installed: apt would pick the first", Dpkg, []Package{gpkg("app", []string{"x|y"}), gpkg("y", nil)}, []string{"app", "y"}},
		{"both alternatives installed: either could satisfy", Dpkg, []Package{gpkg("app", []string{"x|y"}), gpkg("x", nil), gpkg("y", nil)}, []string{"app", "x", "y"}},
		{"the base satisfies the group", Dpkg, []Package{gpkg("app", []string{"gawk|awk"}), gpkg("gawk", nil)}, []string{"app", "gawk"}},
		{"a virtual name: apt chooses its provider", Dpkg, []Package{gpkg("app", []string{"httpd"}), gpkg("nginx", nil, "httpd")}, []string{"app", "nginx"}},
		{"an upgrade is always named", Dpkg, []Package{gpkg("app", []string{"old"}), old2}, []string{"app", "old"}},
		{"a cycle names every member", Dpkg, []Package{gpkg("a", []string{"b"}), gpkg("b", []string{"a", "c"}), gpkg("c", nil)}, []string{"a", "b"}},
		{"rpm resolves a soname through Provides", RPM, []Package{gpkg("app", []string{"libfoo.so.1()(64bit)"}), gpkg("libfoo", nil, "libfoo.so.1()(64bit)")}, []string{"app"}},
		{"two providers: no certain edge", RPM, []Package{gpkg("app", []string{"/bin/sh"}), gpkg("bash", nil, "/bin/sh"), gpkg("busybox", nil, "/bin/sh")}, []string{"app", "bash", "busybox"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm := &DB{Manager: tt.m, Packages: slices.Clone(tt.vm)}
			for _, p := range base {
				if !slices.ContainsFunc(tt.vm, func(q Package) bool { return q.Name == p.Name }) {
					vm.Packages = append(vm.Packages, p)
				}
			}
			sortPackages(vm.Packages)
			b := &DB{Manager: tt.m, Packages: base}
			p, err := NewPlan(vm, b, OSInfo{}, PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, vm, b, p)
			if d := cmp.Diff(tt.want, p.Roots); d != "" {
				t.Errorf("roots (-want +got):\n%s", d)
			}
		})
	}
}

func TestNewPlanErrors(t *testing.T) {
	if _, err := NewPlan(nil, nil, OSInfo{}, PlanOptions{}); err == nil {
		t.Error("nil VM: no error")
	}
	if _, err := NewPlan(&DB{Manager: "nix"}, nil, OSInfo{}, PlanOptions{}); err == nil {
		t.Error("unknown manager: no error")
	}
	_, err := NewPlan(&DB{Manager: Dpkg}, &DB{Manager: RPM}, OSInfo{}, PlanOptions{})
	if !errors.Is(err, ErrManagerMismatch) {
		t.Errorf("mismatch: %v", err)
	}
	p, err := NewPlan(&DB{Manager: Dpkg}, nil, OSInfo{}, PlanOptions{})
	if err != nil || p.RootsBefore != 0 || len(p.Roots) != 0 {
		t.Errorf("empty VM: %+v, %v", p, err)
	}
}

func TestChooseFrontend(t *testing.T) {
	withPkg := func(name string) *DB { return &DB{Manager: RPM, Packages: []Package{spkg(name, "1-1", "x86_64")}} }
	tests := []struct {
		m    Manager
		osr  OSInfo
		base *DB
		want string
	}{
		{Dpkg, OSInfo{ID: "debian"}, nil, feApt},
		{APK, OSInfo{}, nil, feAPK},
		{Pacman, OSInfo{}, nil, fePacman},
		{RPM, OSInfo{ID: "fedora", VersionID: "40"}, nil, feDnf},
		{RPM, OSInfo{ID: "centos", VersionID: "7"}, nil, feYum},
		{RPM, OSInfo{ID: "centos", VersionID: "8"}, nil, feDnf},
		{RPM, OSInfo{ID: "rocky", VersionID: "9.3", IDLike: []string{"rhel", "centos", "fedora"}}, nil, feDnf},
		{RPM, OSInfo{ID: "amzn", VersionID: "2"}, nil, feYum},
		{RPM, OSInfo{ID: "opensuse-leap", VersionID: "15.5", IDLike: []string{"suse", "opensuse"}}, nil, feZypper},
		{RPM, OSInfo{ID: "sles"}, nil, feZypper},
		{RPM, OSInfo{ID: "mariner"}, withPkg("tdnf"), feTdnf},
		{RPM, OSInfo{ID: "rhel", VersionID: "9"}, withPkg("microdnf"), feMicrodnf},
		{RPM, OSInfo{ID: "centos", VersionID: "7"}, withPkg("dnf"), feDnf},
	}
	for _, tt := range tests {
		if got := chooseFrontend(tt.m, tt.osr, tt.base); got != tt.want {
			t.Errorf("chooseFrontend(%s, %+v) = %s, want %s", tt.m, tt.osr, got, tt.want)
		}
	}
}

func TestPlanSpecs(t *testing.T) {
	pkg := Package{Name: "foo", Version: "2:1.0-3.el9", Epoch: 2, UpstreamVersion: "1.0", Release: "3.el9", Arch: "x86_64"}
	for fe, want := range map[string]string{
		feDnf: "foo-2:1.0-3.el9.x86_64", feYum: "foo-2:1.0-3.el9.x86_64", feZypper: "foo.x86_64=2:1.0-3.el9",
		feTdnf: "foo-2:1.0-3.el9.x86_64", feApt: "foo:i386=2:1.0-3.el9", feAPK: "foo=2:1.0-3.el9", fePacman: "foo",
	} {
		p := &Plan{Frontend: fe}
		if got := p.spec(pkg, "foo:i386"); got != want {
			t.Errorf("%s spec = %q, want %q", fe, got, want)
		}
	}
	noEpoch := Package{Name: "bar", Version: "1.0-1", UpstreamVersion: "1.0", Release: "1", Arch: "noarch"}
	if got := (&Plan{Frontend: feDnf}).spec(noEpoch, "bar"); got != "bar-1.0-1.noarch" {
		t.Errorf("dnf spec without epoch = %q", got)
	}
}

func TestStepString(t *testing.T) {
	s := Step{Name: "install", Argv: []string{"apt-get", "install", "a=1.0~rc1", "b"}, Env: aptEnv, AllowFail: true}
	if got, want := s.String(), `DEBIAN_FRONTEND=noninteractive apt-get install "a=1.0~rc1" b  # install, may fail`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

// TestRecommendsTheVMLacks: a VM whose packages recommend something it never installed. With
// Recommends followed, the plan says so and Extras finds the package after the build.
func TestRecommendsTheVMLacks(t *testing.T) {
	vm, base := journalDB()
	for i := range vm.Packages {
		if vm.Packages[i].Name == "ubuntu-standard" {
			vm.Packages[i].Depends = append(vm.Packages[i].Depends, Dep{Kind: Recommends, Alts: []Relation{{Name: "popularity-contest"}}})
		}
	}
	on, off := true, false
	pOn, _ := NewPlan(vm, base, OSInfo{}, PlanOptions{Recommends: &on})
	pOff, _ := NewPlan(vm, base, OSInfo{}, PlanOptions{Recommends: &off})
	if len(pOn.Notes) != 1 || !strings.Contains(pOn.Notes[0], "popularity-contest") || len(pOff.Notes) != 0 {
		t.Errorf("notes with Recommends %q, without %q", pOn.Notes, pOff.Notes)
	}
	built := &DB{Manager: Dpkg, Packages: append(slices.Clone(vm.Packages), gpkg("popularity-contest", nil))}
	base.Packages = append(base.Packages, gpkg("only-in-base", nil))
	built.Packages = append(built.Packages, gpkg("only-in-base", nil))
	extras := Extras(vm, base, built)
	if len(extras) != 1 || extras[0].Name != "popularity-contest" {
		t.Errorf("Extras = %+v", extras)
	}
}

// TestNewPlanMultiArch: a VM with i386 packages beside amd64 ones.
func TestNewPlanMultiArch(t *testing.T) {
	arch := func(p Package, a string) Package { p.Arch = a; return p }
	base := []Package{gpkg("dpkg", nil), gpkg("libc6", nil)}
	vm := &DB{Manager: Dpkg, Packages: append(slices.Clone(base),
		arch(gpkg("libc6", nil), "i386"), arch(gpkg("wine32", []string{"libc6"}), "i386"), arch(gpkg("tzdata", nil), "all"))}
	sortPackages(vm.Packages)
	p, err := NewPlan(vm, &DB{Manager: Dpkg, Packages: base}, OSInfo{ID: "debian"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, vm, &DB{Manager: Dpkg, Packages: base}, p)
	var lines []string
	for _, s := range p.Steps {
		lines = append(lines, strings.Join(s.Argv, " "))
	}
	if lines[0] != "dpkg --add-architecture i386" || lines[1] != "apt-get update" {
		t.Errorf("steps %q", lines)
	}
	if d := cmp.Diff([]string{"tzdata", "wine32:i386"}, p.Roots); d != "" {
		t.Errorf("roots (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"libc6:i386": "1", "tzdata": "1", "wine32:i386": "1"}, p.Pins); d != "" {
		t.Errorf("pins (-want +got):\n%s", d)
	}
	if !strings.HasSuffix(lines[2], " tzdata=1 wine32:i386=1") {
		t.Errorf("install line %q", lines[2])
	}
}

func TestPlanDnfAndZypperFlags(t *testing.T) {
	vm := &DB{Manager: RPM, Packages: []Package{spkg("dnf", "4.14-1", "noarch"), spkg("zypper", "1.14-1", "x86_64"), gpkg("app", nil)}}
	for _, tt := range []struct {
		base string
		rec  bool
		want string
	}{
		{"dnf", true, "dnf install -y --setopt=install_weak_deps=True --allowerasing"},
		{"dnf", false, "dnf install -y --setopt=install_weak_deps=False --allowerasing"},
		{"microdnf", false, "microdnf install -y --setopt=install_weak_deps=False"},
		{"zypper", true, "zypper --non-interactive install --oldpackage --auto-agree-with-licenses --recommends"},
		{"zypper", false, "zypper --non-interactive install --oldpackage --auto-agree-with-licenses --no-recommends"},
	} {
		base := &DB{Manager: RPM, Packages: []Package{spkg(tt.base, "1-1", "noarch")}}
		p, err := NewPlan(vm, base, OSInfo{}, PlanOptions{Recommends: &tt.rec})
		if err != nil {
			t.Fatal(err)
		}
		argv := installStep(t, p).Argv
		if got := strings.Join(argv[:len(argv)-len(p.Roots)], " "); got != tt.want || p.Recommends != tt.rec {
			t.Errorf("%s recommends %v: %q, want %q", tt.base, tt.rec, got, tt.want)
		}
	}
}

// TestPlanHostileNames: a database (from a VM nobody trusts) with names an installer would
// read as options or split: they are left out, never put on a command line.
func TestPlanHostileNames(t *testing.T) {
	vm := &DB{Manager: APK, Packages: []Package{gpkg("--allow-untrusted", nil), gpkg("ok", nil), gpkg("two words", nil), spkg("x", "-1", "armv7")}}
	p, err := NewPlan(vm, nil, OSInfo{}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Roots, []string{"ok"}) || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "left out 3 packages") {
		t.Errorf("roots %v, notes %q", p.Roots, p.Notes)
	}
	for _, s := range p.Steps {
		for _, a := range s.Argv[1:] {
			if strings.HasPrefix(a, "--allow") || strings.Contains(a, " ") {
				t.Errorf("step %v carries a hostile name", s.Argv)
			}
		}
	}
	if _, _, f := FollowUp(vm, nil); !slices.Equal(f.Roots, []string{"ok"}) {
		t.Errorf("follow-up roots %v", f.Roots)
	}
}

// TestAttackPlanHostileArch: a dpkg database whose package claims the architecture
// "--pre-invoke=COMMAND" (dpkg --add-architecture would take it as an option and run the
// command) or one with a space: the packages are left out, and no step carries the value.
func TestAttackPlanHostileArch(t *testing.T) {
	hostile := []string{"--pre-invoke=touch${IFS}/var/cache/apt/archives/x", "-oDir=/", "i386 --force-all", ".hidden", "amd64/../x"}
	vm := &DB{Manager: Dpkg, Packages: []Package{
		{Name: "dpkg", Version: "1.21.22", Arch: "amd64", Status: "install ok installed"},
		{Name: "good", Version: "1", Arch: "i386", Status: "install ok installed"},
	}}
	for i, a := range hostile {
		vm.Packages = append(vm.Packages, Package{Name: fmt.Sprintf("evil%d", i), Version: "1", Arch: a, Status: "install ok installed"})
	}
	base := &DB{Manager: Dpkg, Packages: []Package{{Name: "dpkg", Version: "1.21.22", Arch: "amd64", Status: "install ok installed"}}}
	p, err := NewPlan(vm, base, OSInfo{ID: "debian"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	added := 0
	for _, s := range p.Steps {
		if s.Argv[0] == "dpkg" {
			added++
			if !slices.Equal(s.Argv, []string{"dpkg", "--add-architecture", "i386"}) {
				t.Errorf("step %q", s.Argv)
			}
		}
		for _, a := range s.Argv {
			for _, h := range hostile {
				if strings.Contains(a, h) {
					t.Errorf("step %q carries the hostile architecture %q", s.Argv, h)
				}
			}
		}
	}
	if added != 1 || !slices.Contains(p.Roots, "good:i386") || len(p.Notes) == 0 || !strings.Contains(strings.Join(p.Notes, " "), fmt.Sprintf("left out %d packages", len(hostile))) {
		t.Errorf("add-architecture steps %d, roots %v, notes %q", added, p.Roots, p.Notes)
	}
	for _, a := range []string{"amd64", "all", "hurd-i386", "x86_64", "noarch", "any", "ppc64le", "armv7"} {
		if !validArch(a) {
			t.Errorf("%s refused", a)
		}
	}
}

// TestFollowUpWithFrontend: a base without an installer gives the built root's packages no
// say, so the follow-up keeps the first plan's installer (zypper for a SUSE VM), where
// FollowUp alone falls back to dnf.
func TestFollowUpWithFrontend(t *testing.T) {
	vm := &DB{Manager: RPM, Packages: []Package{spkg("filesystem", "3.18-2", "x86_64"), spkg("orphan", "1.0-1", "x86_64")}}
	built := &DB{Manager: RPM, Packages: []Package{spkg("filesystem", "3.18-2", "x86_64")}}
	first, err := NewPlan(vm, built, OSInfo{ID: "opensuse-leap", VersionID: "15.6"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Frontend != feZypper {
		t.Fatalf("first plan's installer %s, want zypper", first.Frontend)
	}
	missing, _, f := FollowUpWith(vm, built, first.Frontend)
	if len(missing) != 1 || len(f.Steps) == 0 || f.Steps[0].Argv[0] != "zypper" || !slices.Contains(f.Steps[0].Argv, "orphan.x86_64=1.0-1") {
		t.Errorf("follow-up with zypper: missing %v, steps %v", missing, f.Steps)
	}
	if _, _, d := FollowUp(vm, built); d.Frontend != feDnf {
		t.Errorf("FollowUp without a frontend chose %s, want dnf (nothing in the built root says)", d.Frontend)
	}
}
