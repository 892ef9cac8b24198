package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
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

// TestFleetDriverTwoVMs runs the whole experiment (experiments/fleet.sh) on two VMs of the
// suite: the converter image's containers convert them as the Job's pods would, per strategy;
// the results say how much each registry stored after each VM, every image's services answer
// and verify finds each image EQUAL to its VM, and the warm second run uploads no package layer.
func TestFleetDriverTwoVMs(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "debootstrap", "docker-registry", "skopeo", "curl", "python3")
	out := t.TempDir()
	cmd := exec.Command("../fleet.sh")
	cmd.Env = append(os.Environ(), "FLEET_ONLY=web-bw-light,wk-bw", "FLEET_OUT="+out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fleet.sh: %v\n%s", err, b)
	}
	var res Results
	if err := readJSON(filepath.Join(out, "results.json"), &res); err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"one-layer", "single", "grained", "warm"} {
		r := res.Runs[run]
		if r == nil || len(r.Steps) != 2 {
			t.Fatalf("run %s: %+v, want two steps", run, r)
		}
		if r.Steps[1].Stored < r.Steps[0].Stored || r.Steps[0].Stored == 0 {
			t.Errorf("run %s: stored bytes %d then %d", run, r.Steps[0].Stored, r.Steps[1].Stored)
		}
	}
	if len(res.Checks) < 3 {
		t.Errorf("checks %+v: want the three of the two VMs", res.Checks)
	}
	for _, c := range res.Checks {
		if !strings.HasPrefix(c.Result, "ok") {
			t.Errorf("%s: %s: %s", c.VM, c.Check, c.Result)
		}
	}
	for _, vm := range []string{"web-bw-light", "wk-bw"} {
		if res.Verify[vm] != "EQUAL" {
			t.Errorf("verify %s: %q", vm, res.Verify[vm])
		}
	}
	for role := range res.WarmNew {
		if strings.HasPrefix(role, "package") {
			j, _ := json.Marshal(res.WarmNew)
			t.Errorf("the warm run uploaded %s layers: %s", role, j)
		}
	}
	if res.Floor == 0 || res.Ratios["grained_per_floor"] == 0 {
		t.Errorf("floor %d, ratios %v", res.Floor, res.Ratios)
	}
	for _, f := range []string{"results.md", "fleet.svg"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
