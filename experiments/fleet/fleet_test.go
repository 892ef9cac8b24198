package main

import (
	"strings"
	"testing"
)

// TestSuiteShape: the checked-in suite is the fleet issue 14 asks for: at least 12 VMs over
// bookworm, bullseye and trixie in at least four profiles, the package sets overlapping (a
// package in two VMs or more) but different (no two VMs of a release with the same set), and packages
// varied within a profile; and a suite that names an unknown VM in FLEET_ONLY is refused.
func TestSuiteShape(t *testing.T) {
	s, err := loadSuite("../fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	suites, profiles, sets, uses := map[string]bool{}, map[string]map[string]bool{}, map[string]string{}, map[string]int{}
	for _, vm := range s.VMs {
		suites[vm.Suite] = true
		set := strings.Join(vm.Packages, ",")
		if other, ok := sets[vm.Suite+" "+set]; ok { // one release's same set: the same install set
			t.Errorf("%s and %s install the same packages %s", vm.Name, other, set)
		}
		sets[vm.Suite+" "+set] = vm.Name
		if profiles[vm.Profile] == nil {
			profiles[vm.Profile] = map[string]bool{}
		}
		profiles[vm.Profile][set] = true
		for _, p := range vm.Packages {
			uses[p]++
		}
	}
	if len(s.VMs) < 12 || len(suites) != 3 || len(profiles) < 4 {
		t.Errorf("%d VMs, releases %v, %d profiles: want >= 12 over 3 releases in >= 4 profiles", len(s.VMs), suites, len(profiles))
	}
	for p, sets := range profiles {
		if len(sets) < 2 {
			t.Errorf("profile %s: one package set for all its VMs", p)
		}
	}
	shared := 0
	for _, n := range uses {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("no package is in two VMs: nothing overlaps")
	}
	t.Setenv("FLEET_ONLY", "web-bw-light,no-such-vm")
	if _, err := loadSuite("../fleet.yaml"); err == nil || !strings.Contains(err.Error(), "no-such-vm") {
		t.Errorf("FLEET_ONLY naming an unknown VM: %v", err)
	}
}
