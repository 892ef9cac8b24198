package pkgmgr

import (
	"hash/fnv"
	"os"
	"strings"
	"testing"
)

func TestZZSim(t *testing.T) {
	vm, err := ReadDpkg("/")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph(vm, GraphOptions{})
	keep := map[int]bool{}
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
		if keep[v] {
			continue
		}
		keep[v] = true
		stack = append(stack, g.Out[v]...)
	}
	raw, _ := os.ReadFile("/" + dpkgStatusPath)
	names := map[string]bool{}
	for v := range keep {
		names[vm.Packages[v].Name+":"+vm.Packages[v].Arch] = true
	}
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		ps, _ := ParseDpkgStatus(strings.NewReader(para + "\n"))
		if len(ps) == 1 && names[ps[0].Name+":"+ps[0].Arch] {
			out = append(out, para)
		}
	}
	os.WriteFile("/tmp/sim/status", []byte(strings.Join(out, "\n\n")+"\n"), 0o644)
	base, err := ParseDpkgStatus(strings.NewReader(strings.Join(out, "\n\n") + "\n"))
	bdb := &DB{Manager: Dpkg, Packages: base}
	sortPackages(bdb.Packages)
	for _, rec := range []bool{false, true} {
		p, _ := NewPlan(vm, bdb, OSInfo{ID: "debian"}, PlanOptions{Recommends: &rec})
		argv := installStep(t, p).Argv
		var rn []string
		for _, a := range argv[9:] {
			rn = append(rn, strings.SplitN(a, "=", 2)[0])
		}
		var inst []string
		for _, q := range CompareSets(vm, bdb).Install {
			inst = append(inst, q.Name)
		}
		f := map[bool]string{true: "rec", false: "norec"}[rec]
		os.WriteFile("/tmp/sim/"+f+".flag", []byte(argv[4]), 0o644)
		os.WriteFile("/tmp/sim/"+f+".roots", []byte(strings.Join(rn, "\n")+"\n"), 0o644)
		os.WriteFile("/tmp/sim/"+f+".install", []byte(strings.Join(inst, "\n")+"\n"), 0o644)
		t.Logf("%v: %d -> %d", rec, p.RootsBefore, p.RootsAfter)
	}
}
