package pkgmgr

import (
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// closedBase writes a dpkg status file holding a part of this machine's packages closed under
// their dependencies (a consistent system apt accepts as installed), and returns its path and
// database.
func closedBase(t *testing.T, vm *DB) (string, *DB) {
	t.Helper()
	g := NewGraph(vm, GraphOptions{})
	keep := map[string]bool{}
	var stack []int
	for i, p := range vm.Packages {
		h := fnv.New32a()
		h.Write([]byte(p.Name))
		if h.Sum32()%10 < 3 {
			stack = append(stack, i)
		}
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if k := vm.Packages[v].Name + ":" + vm.Packages[v].Arch; !keep[k] {
			keep[k] = true
			stack = append(stack, g.Out[v]...)
		}
	}
	raw, err := os.ReadFile("/" + dpkgStatusPath)
	if err != nil {
		t.Fatal(err)
	}
	field := regexp.MustCompile(`(?m)^(Package|Architecture): (\S+)$`)
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		var name, arch string
		for _, m := range field.FindAllStringSubmatch(para, -1) {
			if m[1] == "Package" {
				name = m[2]
			} else {
				arch = m[2]
			}
		}
		if keep[name+":"+arch] {
			out = append(out, para)
		}
	}
	text := strings.Join(out, "\n\n") + "\n"
	path := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgs, err := ParseDpkgStatus(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	sortPackages(pkgs)
	return path, &DB{Manager: Dpkg, Packages: pkgs}
}

// aptCandidates returns the names among names that apt can install, given the status file.
func aptCandidates(t *testing.T, status string, names []string) map[string]bool {
	t.Helper()
	out, err := exec.Command("apt-cache", append([]string{"-o", "Dir::State::status=" + status, "policy"}, names...)...).Output()
	if err != nil {
		t.Fatalf("apt-cache policy: %v", err)
	}
	ok := map[string]bool{}
	cur := ""
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, " ") && strings.HasSuffix(l, ":") {
			cur = strings.TrimSuffix(l, ":")
		} else if c, found := strings.CutPrefix(strings.TrimSpace(l), "Candidate: "); found && c != "(none)" {
			ok[cur] = true
		}
	}
	return ok
}

// TestPlanAptSimulation hands each plan's install line to apt's own resolver (apt-get -s),
// with a consistent part of this machine as the installed system: apt must install every
// install-set package it can find in the repositories. Versions are left out, since the
// repositories serve newer versions than some installed here; a second run checks the exact
// pinned command line against this machine, where it must be a no-op.
func TestPlanAptSimulation(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "apt-get", "apt-cache")
	vm, _ := machineDBs(t)
	status, base := closedBase(t, vm)
	for _, rec := range []bool{false, true} {
		simulateApt(t, vm, base, status, rec)
	}
	// The exact pinned command line, against this machine where every pin is installed.
	p, err := NewPlan(vm, base, OSInfo{ID: "debian"}, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	argv := installStep(t, p).Argv
	out, err := exec.Command("apt-get", append([]string{"install", "-s"}, argv[2:]...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0 upgraded, 0 newly installed") {
		t.Errorf("pinned install line on this machine: %v\n%s", err, out)
	}
}

// simulateApt runs one plan's install line through apt-get -s over the status file, without
// versions, and checks that apt installs every install-set package the repositories have.
func simulateApt(t *testing.T, vm, base *DB, status string, rec bool) {
	t.Helper()
	p, err := NewPlan(vm, base, OSInfo{ID: "debian"}, PlanOptions{Recommends: &rec})
	if err != nil {
		t.Fatal(err)
	}
	install := checkPlan(t, vm, base, p)
	argv := installStep(t, p).Argv
	opts, specs := argv[2:len(argv)-len(p.Roots)], argv[len(argv)-len(p.Roots):]
	var names []string
	for _, s := range specs {
		names = append(names, strings.SplitN(s, "=", 2)[0])
	}
	var all []string
	for _, pkg := range install {
		all = append(all, pkg.Name)
	}
	avail := aptCandidates(t, status, all)
	names = slices.DeleteFunc(names, func(n string) bool { return !avail[strings.SplitN(n, ":", 2)[0]] })
	args := append(append([]string{"install", "-s", "-o", "Dir::State::status=" + status}, opts...), names...)
	out, err := exec.Command("apt-get", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("apt-get %v: %v\n%s", args[:8], err, out)
	}
	inst := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Inst" {
			inst[strings.SplitN(f[1], ":", 2)[0]] = true
		}
	}
	var lost, unavailable []string
	for _, pkg := range install {
		switch {
		case inst[pkg.Name]:
		case !avail[pkg.Name]:
			unavailable = append(unavailable, pkg.Name)
		default:
			lost = append(lost, pkg.Name)
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		t.Errorf("Recommends %v: apt would not install %d install-set packages: %v", rec, len(lost), lost)
	}
	extra := len(inst) - (len(install) - len(unavailable) - len(lost))
	t.Logf("Recommends %v: %d -> %d roots; apt installs all %d available install-set packages (and %d others: upgrades of base packages, newer versions' dependencies, recommends the VM lacks); %d not in any repository",
		rec, p.RootsBefore, p.RootsAfter, len(install)-len(unavailable), extra, len(unavailable))
}
