package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// fleetRun runs `fleet convert` of inv to a fresh output directory with the real binary and
// returns its standard error; the broken VM makes it exit 1.
func fleetRun(t *testing.T, inv string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"fleet", "convert", inv, "--output-dir", filepath.Join(dir, "out"), "--state", filepath.Join(dir, "state"),
		"--jobs", "2", "--base", "docker-daemon:" + testenv.EngineBase(t), "--cache-dir", convertCacheDir()}, extra...)
	cmd := exec.Command(vm2imageBinary(t), args...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if code := exitCodeOfRun(cmd.Run()); code != 1 {
		t.Fatalf("fleet convert %v: exit %d, want 1 (the broken VM)\n%s", extra, code, stderr.String())
	}
	return stderr.String()
}

// TestFleetProgress converts two VMs and a broken one with the real binary. With
// --json-progress the VMs' phase events carry their names (bytes of the diff phase with their
// total), and each VM's end is a fleet event with its status, the VMs done of the total and the
// bytes moved; after the first VM, the time left. Without a terminal the fleet's total line
// follows each VM's end.
func TestFleetProgress(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	inv := fleetFixture(t, 2)
	type event struct {
		Event, Phase, VM, Status string
		Done, Total, Bytes       int64
		ETA                      *float64 `json:"eta_seconds"`
	}
	var evs []event
	out := fleetRun(t, inv, "--json-progress")
	t.Logf("fleet convert --json-progress:\n%s", out)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue // the fleet's sentences
		}
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	starts, diffBytes, ends := map[string]bool{}, map[string]bool{}, map[string]event{}
	var last event
	for _, e := range evs {
		switch e.Event {
		case "start":
			starts[e.VM] = starts[e.VM] || e.Phase == "connect"
		case "bytes":
			diffBytes[e.VM] = diffBytes[e.VM] || e.Phase == "diff" && e.Done > 0 && e.Total > 0
		case "fleet":
			if e.VM != "" {
				ends[e.VM] = e
			}
			last = e
		}
	}
	for _, vm := range []string{"vm1", "vm2"} {
		if !starts[vm] || !diffBytes[vm] {
			t.Errorf("%s: phase start %v, diff bytes with a total %v", vm, starts[vm], diffBytes[vm])
		}
		if e := ends[vm]; e.Status != "done" || e.Total != 3 || e.Done < 1 || e.Bytes <= 0 {
			t.Errorf("%s's end: %+v", vm, e)
		}
	}
	if e := ends["broken"]; e.Status != "failed" {
		t.Errorf("broken's end: %+v", e)
	}
	if last.Done != 3 || last.Total != 3 {
		t.Errorf("last fleet event %+v: want 3 of 3 VMs done", last)
	}
	sawETA := false
	for _, e := range ends {
		sawETA = sawETA || e.Done < 3 && e.ETA != nil && *e.ETA > 0
	}
	if !sawETA {
		t.Errorf("no fleet event before the last VM's end gives the time left: %+v", ends)
	}

	plain := fleetRun(t, inv)
	total := regexp.MustCompile(`(?m)^fleet: [123]/3 VMs done, [0-2] running, [0-9.]+ [KMG]?i?B moved`)
	if n := len(total.FindAllString(plain, -1)); n < 3 || strings.Contains(plain, "\x1b[") || strings.Contains(plain, `"event"`) {
		t.Errorf("plain progress: %d total lines, want one per VM's end:\n%s", n, plain)
	}
	if !regexp.MustCompile(`(?m)^fleet: 1/3 VMs done, [0-2] running, [0-9.]+ [KMG]?i?B moved, [0-9.hms]+ left`).MatchString(plain) {
		t.Errorf("plain progress: no time left after the first VM:\n%s", plain)
	}
}

// TestFleetProgressOnTerminal: under a pseudo-terminal (script(1)) the fleet draws a line per
// running VM with its phase and time, and the total line, in place; the fleet's sentences go
// above them.
func TestFleetProgressOnTerminal(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "script")
	inv := fleetFixture(t, 2)
	dir := t.TempDir()
	cmdline := "VM2IMAGE_INIT=" + testenv.InitBinary(t) + " " + vm2imageBinary(t) + " fleet convert " + inv + " --output-dir " + filepath.Join(dir, "out") +
		" --state " + filepath.Join(dir, "state") + " --jobs 2 --base docker-daemon:" + testenv.EngineBase(t) + " --cache-dir " + convertCacheDir()
	b, err := exec.Command("script", "-qec", cmdline, "/dev/null").CombinedOutput()
	if code := exitCodeOfRun(err); code != 1 {
		t.Fatalf("fleet under a terminal: exit %d, want 1 (the broken VM)\n%s", code, b)
	}
	s := string(b)
	if !regexp.MustCompile(`\r\x1b\[2Kvm[12]: (connect|base|packages|volumes|diff|runtime|assemble) [0-9.]+m?s`).MatchString(s) {
		t.Errorf("no line of a running VM with its phase and time:\n%q", s)
	}
	if !regexp.MustCompile(`\x1b\[\dA\r\x1b\[J`).MatchString(s) || !regexp.MustCompile(`\r\x1b\[2K3/3 VMs done, 0 running, [0-9.]+ [KMG]?i?B moved\r?\n`).MatchString(s) {
		t.Errorf("the lines are not redrawn in place, or the last total line is missing:\n%q", s)
	}
	if !strings.Contains(s, "fleet: vm1: done in") {
		t.Errorf("the fleet's sentences are missing:\n%q", s)
	}
}
