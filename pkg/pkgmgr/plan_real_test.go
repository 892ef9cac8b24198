package pkgmgr

import (
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
)

// machineDBs reads this machine's dpkg database as the VM and a filtered copy as the base.
func machineDBs(t *testing.T) (vm, base *DB) {
	t.Helper()
	if !isFile("/" + dpkgStatusPath) {
		testenv.Skip(t, "this machine has no dpkg database")
	}
	vm, err := ReadDpkg("/")
	if err != nil {
		t.Fatal(err)
	}
	base, err = ReadDpkg(filteredBase(t, "/"+dpkgStatusPath))
	if err != nil {
		t.Fatal(err)
	}
	return vm, base
}

// TestNewPlanDpkgMachine plans this machine's packages over a filtered copy, with and without
// Recommends: the flag and the roots flip together, and each plan's roots reach the whole
// install set through the VM's graph with that plan's own setting.
func TestNewPlanDpkgMachine(t *testing.T) {
	vm, base := machineDBs(t)
	plans := map[bool]*Plan{}
	for _, rec := range []bool{false, true} {
		p, err := NewPlan(vm, base, OSInfo{ID: "debian", VersionID: "12"}, PlanOptions{Recommends: &rec, RemoveExtra: true})
		if err != nil {
			t.Fatal(err)
		}
		plans[rec] = p
		install := checkPlan(t, vm, base, p)
		if p.Frontend != feApt || p.Recommends != rec {
			t.Errorf("frontend %s, recommends %v", p.Frontend, p.Recommends)
		}
		if p.RootsAfter >= p.RootsBefore {
			t.Errorf("Recommends %v: %d -> %d, the roots cut nothing", rec, p.RootsBefore, p.RootsAfter)
		}
		argv := installStep(t, p).Argv
		flag := map[bool]string{true: "--install-recommends", false: "--no-install-recommends"}
		if !slices.Contains(argv, flag[rec]) || slices.Contains(argv, flag[!rec]) {
			t.Errorf("Recommends %v: install line %v", rec, argv[:8])
		}
		for i, k := range p.Roots {
			if want := k + "=" + p.Pins[k]; argv[len(argv)-len(p.Roots)+i] != want {
				t.Fatalf("install line item %d = %q, want %q", i, argv[len(argv)-len(p.Roots)+i], want)
			}
		}
		checkDpkgSteps(t, p)
		checkMarks(t, p, install)
		t.Logf("Recommends %v: %d -> %d", rec, p.RootsBefore, p.RootsAfter)
	}
	if slices.Equal(plans[true].Roots, plans[false].Roots) {
		t.Logf("the install set holds no recommended-only package: both settings give the same roots")
	}
	// nil takes the VM's own configuration: this machine's apt.conf files.
	conf := map[string]string{}
	matches, _ := filepath.Glob("/etc/apt/apt.conf.d/*")
	for _, m := range append(matches, "/etc/apt/apt.conf") {
		if b, err := os.ReadFile(m); err == nil {
			conf[m] = string(b)
		}
	}
	p, err := NewPlan(vm, base, OSInfo{ID: "debian"}, PlanOptions{Config: conf})
	if err != nil {
		t.Fatal(err)
	}
	if want := RecommendsDefault(Dpkg, conf); p.Recommends != want || !slices.Equal(p.Roots, plans[want].Roots) {
		t.Errorf("default plan: recommends %v, want %v with the same roots", p.Recommends, want)
	}
}

// checkDpkgSteps checks the order and shape of an apt plan's steps.
func checkDpkgSteps(t *testing.T, p *Plan) {
	t.Helper()
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Argv[0]+" "+s.Argv[1])
		if !slices.Contains(s.Env, "DEBIAN_FRONTEND=noninteractive") {
			t.Errorf("step %s lacks DEBIAN_FRONTEND", s.Name)
		}
	}
	want := []string{"apt-get update", "apt-get install", "dpkg --purge", "apt-mark auto", "apt-mark manual"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
	for _, k := range []string{"only-in-base:amd64", "only-in-base-too:all"} {
		if !slices.Contains(p.Steps[2].Argv, k) {
			t.Errorf("removal step %v lacks %s", p.Steps[2].Argv, k)
		}
	}
}

// checkMarks checks that every install-set package whose mark the VM records is restored.
func checkMarks(t *testing.T, p *Plan, install []Package) {
	t.Helper()
	for _, pkg := range install {
		if pkg.Auto == nil {
			continue
		}
		list := map[bool][]string{true: p.AutoMark, false: p.ManualMark}[*pkg.Auto]
		if !slices.ContainsFunc(list, func(k string) bool { return k == pkg.Name || k == pkg.Name+":"+pkg.Arch }) {
			t.Errorf("%s (auto %v) is not marked", pkg.Name, *pkg.Auto)
		}
	}
}

// TestNewPlanAPKShared plans the real Alpine database over a base without its boost libraries
// and an older busybox; the world the plan writes is the real etc/apk/world.
func TestNewPlanAPKShared(t *testing.T) {
	root := requireShared(t, "apk/alpine-3.14-armv7")
	vm, err := ReadAPK(root)
	if err != nil {
		t.Fatal(err)
	}
	base := &DB{Manager: APK}
	for _, p := range vm.Packages {
		switch {
		case strings.HasPrefix(p.Name, "boost"):
		case p.Name == "busybox":
			p.Version = "1.33.0-r1"
			base.Packages = append(base.Packages, p)
		default:
			base.Packages = append(base.Packages, p)
		}
	}
	p, err := NewPlan(vm, base, OSInfo{ID: "alpine", VersionID: "3.14.0"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, vm, base, p)
	argv := installStep(t, p).Argv
	if !slices.Equal(argv[:3], []string{"apk", "add", "--no-cache"}) || p.Recommends || p.RootsAfter >= p.RootsBefore {
		t.Errorf("plan %v, %d -> %d", argv, p.RootsBefore, p.RootsAfter)
	}
	if !slices.Contains(argv, "busybox="+p.Pins["busybox"]) {
		t.Errorf("install line %v lacks the pinned busybox", argv)
	}
	world, err := os.ReadFile(filepath.Join(root, apkWorldPath))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(world))
	sort.Strings(want)
	if d := cmp.Diff(strings.Join(want, "\n")+"\n", p.WriteFiles["/etc/apk/world"]); d != "" {
		t.Errorf("world (-etc/apk/world +plan):\n%s", d)
	}
	// With an empty base, every root is something the VM's user asked for (world) or that apk
	// installed by itself through install_if (an "i:" line), which is no dependency edge.
	installIf := apkInstallIf(t, root)
	all, err := NewPlan(vm, nil, OSInfo{ID: "alpine"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, vm, &DB{Manager: APK}, all)
	for _, r := range all.Roots {
		if !slices.Contains(want, r) && !installIf[r] {
			t.Errorf("root %s is neither in the VM's world %v nor installed through install_if", r, want)
		}
	}
	t.Logf("apk: %d -> %d over the base, %d -> %d from scratch (world has %d)", p.RootsBefore, p.RootsAfter, all.RootsBefore, all.RootsAfter, len(want))
}

// apkInstallIf reads which packages of an apk database have an install_if ("i:") line.
func apkInstallIf(t *testing.T, root string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, apkInstalledPath))
	if err != nil {
		t.Fatal(err)
	}
	installIf := map[string]bool{}
	for _, block := range strings.Split(string(raw), "\n\n") {
		name, hasIf := "", false
		for _, l := range strings.Split(block, "\n") {
			if n, ok := strings.CutPrefix(l, "P:"); ok {
				name = n
			}
			hasIf = hasIf || strings.HasPrefix(l, "i:")
		}
		installIf[name] = hasIf
	}
	return installIf
}

// keepHalf keeps a deterministic part of pkgs, and every package named in always.
func keepHalf(pkgs []Package, always ...string) []Package {
	var out []Package
	for _, p := range pkgs {
		h := fnv.New32a()
		h.Write([]byte(p.Name))
		if h.Sum32()%2 == 0 || slices.Contains(always, p.Name) {
			out = append(out, p)
		}
	}
	return out
}

func TestNewPlanRPMShared(t *testing.T) {
	mariner, err := readRPMDB(requireShared(t, "rpmdb/sqlite-cbl-mariner-2.0/rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	vm := &DB{Manager: RPM, Packages: mariner}
	base := &DB{Manager: RPM, Packages: keepHalf(mariner, "tdnf", "filesystem")}
	p, err := NewPlan(vm, base, OSInfo{ID: "mariner", VersionID: "2.0"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	install := checkPlan(t, vm, base, p)
	argv := installStep(t, p).Argv
	if p.Frontend != feTdnf || !slices.Equal(argv[:3], []string{"tdnf", "install", "-y"}) || p.Recommends || p.RootsAfter >= p.RootsBefore {
		t.Errorf("plan %s %v, %d -> %d", p.Frontend, argv[:3], p.RootsBefore, p.RootsAfter)
	}
	for i, k := range p.Roots {
		pkg := install[keyPackage(t, install, k)]
		if want := pkg.Name + "-" + strings.TrimPrefix(pkg.Version, "0:") + "." + pkg.Arch; argv[len(argv)-len(p.Roots)+i] != want {
			t.Errorf("spec %q, want %q", argv[len(argv)-len(p.Roots)+i], want)
		}
	}
	t.Logf("mariner: %d -> %d", p.RootsBefore, p.RootsAfter)

	sle, err := readRPMDB(requireShared(t, "rpmdb/ndb-sle15-bci/Packages.db"))
	if err != nil {
		t.Fatal(err)
	}
	vm = &DB{Manager: RPM, Packages: sle}
	p, err = NewPlan(vm, nil, OSInfo{ID: "sles", VersionID: "15.4"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, vm, &DB{Manager: RPM}, p)
	argv = installStep(t, p).Argv
	if p.Frontend != feZypper || !p.Recommends || !slices.Contains(argv, "--recommends") || !slices.Contains(argv, "--oldpackage") {
		t.Errorf("SLE plan %s recommends %v: %v", p.Frontend, p.Recommends, argv[:7])
	}
	if !strings.Contains(argv[len(argv)-1], ".") || !strings.Contains(argv[len(argv)-1], "=") {
		t.Errorf("zypper spec %q is not name.arch=version-release", argv[len(argv)-1])
	}
	t.Logf("sle: %d -> %d", p.RootsBefore, p.RootsAfter)
}

// TestNewPlanRPMBuilt plans the RPMs TestReadRPMBuilt builds, with yum as CentOS 7 has it: a
// package older in the VM than in the base gets yum downgrade, gpg-pubkey is left out.
func TestNewPlanRPMSynthetic(t *testing.T) {
	rp := func(name, v, r, arch string, epoch int) Package {
		p := Package{Name: name, UpstreamVersion: v, Release: r, Arch: arch, Epoch: epoch, Version: v + "-" + r}
		if epoch > 0 {
			p.Version = "1:" + p.Version
		}
		return p
	}
	vm := &DB{Manager: RPM, Packages: []Package{
		rp("bash", "4.2.46", "34.el7", "x86_64", 0), rp("gpg-pubkey", "f4a80eb5", "53a7ff4b", "(none)", 0),
		rp("openssl", "1.0.2k", "19.el7", "x86_64", 1), rp("tzdata", "2023c", "1.el7", "noarch", 0),
	}}
	base := &DB{Manager: RPM, Packages: []Package{rp("bash", "4.2.46", "35.el7_9", "x86_64", 0), rp("yum", "3.4.3", "168.el7", "noarch", 0)}}
	p, err := NewPlan(vm, base, OSInfo{ID: "centos", VersionID: "7"}, PlanOptions{RemoveExtra: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, vm, base, p)
	var lines []string
	for _, s := range p.Steps {
		lines = append(lines, strings.Join(s.Argv, " "))
	}
	want := []string{
		"yum install -y openssl-1:1.0.2k-19.el7.x86_64 tzdata-2023c-1.el7.noarch",
		"yum downgrade -y bash-4.2.46-34.el7.x86_64",
		"rpm -e --nodeps yum-3.4.3-168.el7.noarch",
	}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
	if p.Recommends || len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "gpg-pubkey") {
		t.Errorf("recommends %v, notes %v", p.Recommends, p.Notes)
	}
}

func TestNewPlanPacman(t *testing.T) {
	auto := func(p Package, a bool) Package { p.Auto = &a; return p }
	vm := &DB{Manager: Pacman, Packages: []Package{
		auto(gpkg("bash", nil, "sh"), false), auto(gpkg("foo", []string{"bar", "sh"}), false),
		auto(gpkg("bar", nil), true), auto(gpkg("glibc", nil), true),
	}}
	base := &DB{Manager: Pacman, Packages: []Package{auto(gpkg("bash", nil, "sh"), false), auto(gpkg("glibc", nil), false)}}
	p, err := NewPlan(vm, base, OSInfo{ID: "arch"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, vm, base, p)
	var lines []string
	for _, s := range p.Steps {
		lines = append(lines, strings.Join(s.Argv, " "))
	}
	want := []string{"pacman -Sy --noconfirm", "pacman -S --noconfirm --needed foo", "pacman -D --asdeps bar glibc", "pacman -D --asexplicit foo"}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
	if len(p.Notes) == 0 || !strings.Contains(p.Notes[0], "cannot install a given version") {
		t.Errorf("notes %v", p.Notes)
	}
}

// TestFollowUp takes this machine's database as the VM and a copy missing some packages and
// holding others at another version as the built root.
func TestFollowUp(t *testing.T) {
	vm, _ := machineDBs(t)
	built := &DB{Manager: Dpkg}
	var wantMissing, wantDiffer []string
	for i, p := range vm.Packages {
		switch {
		case i%7 == 3:
			wantMissing = append(wantMissing, p.Name)
		case i%11 == 5:
			p.Version += "+other"
			wantDiffer = append(wantDiffer, p.Name)
			built.Packages = append(built.Packages, p)
		default:
			built.Packages = append(built.Packages, p)
		}
	}
	missing, differ, plan := FollowUp(vm, built)
	var gotMissing, gotDiffer []string
	for _, p := range missing {
		gotMissing = append(gotMissing, p.Name)
	}
	for _, c := range differ {
		gotDiffer = append(gotDiffer, c.Name)
		if c.BaseVersion != c.VMVersion+"+other" {
			t.Errorf("change %+v", c)
		}
	}
	if d := cmp.Diff(wantMissing, gotMissing); d != "" {
		t.Errorf("missing (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantDiffer, gotDiffer); d != "" {
		t.Errorf("differ (-want +got):\n%s", d)
	}
	argv := installStep(t, plan).Argv
	if plan.Steps[0].Argv[1] != "install" || !slices.Contains(argv, "--no-install-recommends") || plan.Recommends {
		t.Errorf("follow-up steps %v", plan.Steps[0].Argv[:6])
	}
	if n := len(missing) + len(differ); len(plan.Roots) != n || len(argv) != 11+n {
		t.Errorf("follow-up names %d packages, want %d", len(plan.Roots), n)
	}
	for _, k := range plan.Roots {
		if !slices.Contains(argv, k+"="+plan.Pins[k]) {
			t.Errorf("follow-up line lacks %s=%s", k, plan.Pins[k])
		}
	}
	checkPerPackage(t, plan)
	if _, _, none := FollowUp(vm, vm); len(none.Steps) != 0 || none.RootsAfter != 0 {
		t.Errorf("nothing to follow up, yet %+v", none.Steps)
	}
}

// checkPerPackage checks that PerPackage gives one install step per named package, each
// allowed to fail.
func checkPerPackage(t *testing.T, plan *Plan) {
	t.Helper()
	split := plan.PerPackage()
	installs := 0
	for _, s := range split.Steps {
		if strings.HasPrefix(s.Name, stepInstall+" ") {
			installs++
			if !s.AllowFail || len(s.Argv) != 12 {
				t.Errorf("per-package step %+v", s)
			}
		}
	}
	if installs != len(plan.Roots) || len(plan.Steps) == len(split.Steps) {
		t.Errorf("PerPackage: %d install steps for %d packages", installs, len(plan.Roots))
	}
}

func TestFollowUpPacmanCannotPin(t *testing.T) {
	vm := &DB{Manager: Pacman, Packages: []Package{gpkg("a", nil), gpkg("b", nil)}}
	b := gpkg("b", nil)
	b.Version = "2"
	missing, differ, plan := FollowUp(vm, &DB{Manager: Pacman, Packages: []Package{b}})
	if len(missing) != 1 || len(differ) != 1 || !slices.Equal(plan.Roots, []string{"a"}) {
		t.Errorf("missing %v differ %v roots %v", missing, differ, plan.Roots)
	}
}
