package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// TestExportProgressOnTerminal runs the real binary's export of the fixture VM under a
// pseudo-terminal (script(1)): while the contents move the phase's line shows bytes done of the
// manifest's total, the rate and the time left; at the end it says done with its time, and no
// spinner is ever drawn.
func TestExportProgressOnTerminal(t *testing.T) {
	testenv.RequireCommands(t, "script")
	root := testenv.Root(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	out := filepath.Join(t.TempDir(), "vm.tar")
	b, err := exec.Command("script", "-qec", bin+" export dir:"+root+" -o "+out, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("export under a terminal: %v\n%s", err, b)
	}
	s := string(b)
	running := regexp.MustCompile(`export +[0-9.]+m?s +[0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB \(\d+%\), [0-9.]+ [KMG]?i?B/s, [0-9.]+m?s left`)
	if !running.MatchString(s) {
		t.Errorf("no line with bytes, total, rate and time left:\n%q", s)
	}
	if !regexp.MustCompile(`\x1b\[1A\r\x1b\[2Kexport +done [0-9.]+m?s`).MatchString(s) {
		t.Errorf("the finished phase is not redrawn as done with its time:\n%q", s)
	}
	if strings.ContainsAny(s, "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") {
		t.Errorf("a spinner was drawn:\n%q", s)
	}
}

// TestExportProgressPlainAndJSON: without a terminal, plain lines carry the same figures; with
// --json-progress every line is an event with the documented fields; --quiet prints none.
func TestExportProgressPlainAndJSON(t *testing.T) {
	root := testenv.Root(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	out := filepath.Join(t.TempDir(), "vm.tar")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"export", "dir:" + root, "-o", out}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("export %v: %v\n%s", args, err, stderr.String())
		}
		return stderr.String()
	}
	plain := run()
	if !regexp.MustCompile(`(?m)^vm2image: export: [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]iB \(\d+%\)`).MatchString(plain) ||
		!regexp.MustCompile(`(?m)^vm2image: export done in `).MatchString(plain) || strings.Contains(plain, "\x1b[") {
		t.Errorf("plain progress:\n%s", plain)
	}
	var sawBytes, sawDone bool
	sc := bufio.NewScanner(strings.NewReader(run("--json-progress")))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue // the summary line
		}
		var ev struct {
			Event, Phase string
			Done, Total  int64
			Rate         float64
			ETA          *float64 `json:"eta_seconds"`
			Seconds      float64
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		switch ev.Event {
		case "bytes":
			sawBytes = ev.Phase == "export" && ev.Done > 0 && ev.Total > ev.Done/2 && ev.Rate > 0 && ev.ETA != nil
		case "done":
			sawDone = ev.Phase == "export" && ev.Seconds > 0
		}
	}
	if !sawBytes || !sawDone {
		t.Errorf("JSON progress lacks a bytes event with done, total, rate and eta (%v) or a done event (%v)", sawBytes, sawDone)
	}
	if q := run("--quiet"); strings.Contains(q, "vm2image: export") {
		t.Errorf("--quiet printed progress:\n%s", q)
	}
}

// TestConvertProgressOnTerminal: a --transfer full conversion of the fixture VM under a
// pseudo-terminal. The diff phase shows bytes of the manifest's total, rate and time left while
// the filesystem moves; the last frame lists every phase done with its time, and no spinner.
func TestConvertProgressOnTerminal(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "script")
	testenv.RequireDocker(t)
	root := testenv.Root(t, testenv.WebVM)
	bin := vm2imageBinary(t)
	dir := t.TempDir()
	cmdline := fmt.Sprintf("VM2IMAGE_INIT=%s %s convert dir:%s --transfer full --no-packages --base docker-daemon:%s -o %s --no-context --cache-dir %s",
		testenv.InitBinary(t), bin, root, testenv.EngineBase(t), filepath.Join(dir, "img.tar"), convertCacheDir())
	b, err := exec.Command("script", "-qec", cmdline, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("convert under a terminal: %v\n%s", err, b)
	}
	s := string(b)
	if !regexp.MustCompile(`diff +[0-9.]+m?s +[0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB \(\d+%\), [0-9.]+ [KMG]?i?B/s, [0-9.]+m?s left`).MatchString(s) {
		t.Errorf("no diff line with bytes, total, rate and time left:\n%q", s)
	}
	frames := strings.Split(s, "\x1b[7A")
	last := frames[len(frames)-1]
	for _, p := range []string{"connect", "base", "packages", "volumes", "diff", "runtime", "assemble"} {
		if !regexp.MustCompile(`\x1b\[2K` + p + ` +done [0-9.]+m?s`).MatchString(last) {
			t.Errorf("the last frame does not show %s done with its time:\n%q", p, last)
		}
	}
	if strings.ContainsAny(s, "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") {
		t.Errorf("a spinner was drawn")
	}
}
