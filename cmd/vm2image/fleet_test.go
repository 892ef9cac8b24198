package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/fleet"
)

// fleetFixture writes an inventory of n dir: VMs (overlays of the Bookworm root, each with a
// file of its own) and one VM whose tar: source is garbage, and returns its path.
func fleetFixture(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	var inv strings.Builder
	inv.WriteString("defaults:\n  no_packages: false\nvms:\n")
	for i := 1; i <= n; i++ {
		root := testenv.Overlay(t, testenv.Root(t, testenv.Bookworm))
		must(t, os.MkdirAll(filepath.Join(root, "srv/app"), 0o755))
		writeFile(t, filepath.Join(root, "srv/app/id"), fmt.Sprintf("vm %d\n", i))
		fmt.Fprintf(&inv, "  - name: vm%d\n    source: dir:%s\n", i, root)
	}
	writeFile(t, filepath.Join(dir, "broken.tar"), strings.Repeat("not a tar archive\n", 100))
	inv.WriteString("  - name: broken\n    source: tar:broken.tar\n") // relative to the inventory
	path := filepath.Join(dir, "fleet.yaml")
	writeFile(t, path, inv.String())
	return path
}

func fleetCmd(t *testing.T, inv, reg, state string, extra ...string) *exec.Cmd {
	args := append([]string{"fleet", "convert", inv, "--push", reg + "/fleet", "--state", state,
		"--base", "docker-daemon:" + testenv.EngineBase(t), "--cache-dir", convertCacheDir()}, extra...)
	cmd := exec.Command(vm2imageBinary(t), args...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	return cmd
}

func readResults(t *testing.T, state string) map[string]fleet.Result {
	t.Helper()
	out := map[string]fleet.Result{}
	files, _ := filepath.Glob(filepath.Join(state, "*.json"))
	for _, f := range files {
		if strings.HasSuffix(f, ".report.json") {
			continue
		}
		var r fleet.Result
		b, err := os.ReadFile(f)
		must(t, err)
		must(t, json.Unmarshal(b, &r))
		out[r.Name] = r
	}
	return out
}

// TestFleetConvert: three VMs and a broken one, two at a time, pushed to a real registry: the
// broken VM is recorded and the others go on; images share the repository's blobs (layers of a
// later VM are found there already); --resume converts only what is not done.
func TestFleetConvert(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "skopeo")
	reg := testenv.Registry(t)
	inv := fleetFixture(t, 3)
	state := filepath.Join(t.TempDir(), "state")
	out, err := fleetCmd(t, inv, reg, state, "--jobs", "2").CombinedOutput()
	t.Logf("fleet convert:\n%s", out)
	if code := exitCodeOfRun(err); code != 1 {
		t.Fatalf("exit code %d, want 1 (one VM failed)", code)
	}
	res := readResults(t, state)
	existing := 0
	for i := 1; i <= 3; i++ {
		r := res[fmt.Sprintf("vm%d", i)]
		if r.Status != fleet.StatusOK || r.Digest == "" || r.LayersNew+r.LayersExisting < 3 {
			t.Errorf("vm%d: %+v", i, r)
		}
		existing += r.LayersExisting
		got := run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg+"/fleet:"+r.Name)
		if !strings.Contains(got, r.Digest) {
			t.Errorf("registry's %s is not %s:\n%s", r.Name, r.Digest, got)
		}
	}
	if existing == 0 {
		t.Error("no VM found a layer in the registry already: the base layer is the same in all three")
	}
	if b := res["broken"]; b.Status != fleet.StatusFailed || !strings.Contains(b.Error, "broken.tar") {
		t.Errorf("broken VM: %+v", b)
	}
	for _, want := range []string{"vm1", "vm3", "broken", "FAILED", "3 converted, 1 failed, 0 done before", "LAYERS IN REGISTRY"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// A second run with --resume: the three are skipped, the broken one is tried again.
	out, err = fleetCmd(t, inv, reg, state, "--resume").CombinedOutput()
	t.Logf("fleet convert --resume:\n%s", out)
	if code := exitCodeOfRun(err); code != 1 || !strings.Contains(string(out), "0 converted, 1 failed, 3 done before") {
		t.Errorf("resume: exit code %d", code)
	}
	again := readResults(t, state)
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("vm%d", i)
		if !again[name].Finished.Equal(res[name].Finished) {
			t.Errorf("%s was converted again on --resume", name)
		}
	}
}

// TestFleetKilledAndResumed: a fleet run killed (SIGKILL, no cleanup) after its first VM is
// resumed and converts only the rest.
func TestFleetKilledAndResumed(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	reg := testenv.Registry(t)
	inv := fleetFixture(t, 3)
	state := filepath.Join(t.TempDir(), "state")
	cmd := fleetCmd(t, inv, reg, state, "--jobs", "1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	must(t, cmd.Start())
	deadline := time.Now().Add(5 * time.Minute)
	for len(readResults(t, state)) == 0 {
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatalf("no VM finished within 5 minutes:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
	_ = cmd.Wait()
	first := readResults(t, state)
	if len(first) != 1 {
		t.Logf("%d VMs finished before the kill", len(first))
	}
	out, err := fleetCmd(t, inv, reg, state, "--resume").CombinedOutput()
	t.Logf("first run:\n%s\nresumed:\n%s", log.String(), out)
	if code := exitCodeOfRun(err); code != 1 {
		t.Errorf("resumed run: exit code %d, want 1 (the broken VM)", code)
	}
	res := readResults(t, state)
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("vm%d", i)
		if res[name].Status != fleet.StatusOK {
			t.Errorf("%s after the resume: %+v", name, res[name])
		}
		if f, ok := first[name]; ok && !res[name].Finished.Equal(f.Finished) {
			t.Errorf("%s, finished before the kill, was converted again", name)
		}
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d done before", len(first))) {
		t.Errorf("the resumed run does not say %d VMs were done before", len(first))
	}
}

func exitCodeOfRun(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestFleetPlan: two web VMs and a bare one over the same base: the web VMs' packages get
// layers of their own shared by both, the bare VM has none, and package-grained storage is
// below one packages layer per VM.
func TestFleetPlan(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	web := testenv.Root(t, testenv.WebVM)
	bare := testenv.Root(t, testenv.Bookworm)
	inv := filepath.Join(t.TempDir(), "fleet.yaml")
	writeFile(t, inv, fmt.Sprintf("vms:\n  - name: web1\n    source: dir:%s\n  - name: web2\n    source: dir:%s\n  - name: bare\n    source: dir:%s\n", web, web, bare))
	out, err := exec.Command(vm2imageBinary(t), "fleet", "plan", inv, "--json", "--base", "docker-daemon:"+testenv.EngineBase(t),
		"--cache-dir", convertCacheDir()).Output()
	if err != nil {
		t.Fatalf("fleet plan: %v", err)
	}
	var p fleet.LayerPlan
	must(t, json.Unmarshal(out, &p))
	nginx := false
	for _, l := range p.Own {
		if len(l.Images) != 2 || l.Images[0] != "web1" || l.Images[1] != "web2" {
			t.Errorf("own layer %+v: want shared by web1 and web2", l)
		}
		nginx = nginx || strings.HasPrefix(l.Package.Name, "nginx")
	}
	if !nginx || len(p.Images) != 3 || p.Images[2].Layers != 0 {
		t.Errorf("plan %+v", p)
	}
	if s := p.Stored; s.PackageGrained >= s.PerImage || s.PackageGrained != s.Floor {
		t.Errorf("stored %+v: want package-grained below per image, at the floor", s)
	}
}
