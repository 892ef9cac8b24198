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

// webVMImage converts the fixture VM's root (a full transfer, no packages layer) with the real
// binary and returns the root and the docker-archive.
func webVMImage(t *testing.T, bin string) (root, archive string) {
	t.Helper()
	testenv.Short(t)
	testenv.RequireDocker(t)
	root = testenv.Root(t, testenv.WebVM)
	archive = filepath.Join(t.TempDir(), "img.tar")
	cmd := exec.Command(bin, "convert", "dir:"+root, "--transfer", "full", "--no-packages", "--base", "docker-daemon:"+testenv.EngineBase(t),
		"-o", archive, "--no-context", "--cache-dir", convertCacheDir(), "--quiet")
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("convert: %v\n%s", err, b)
	}
	return root, archive
}

// TestVerifyProgress verifies the converted fixture VM (200 MiB, some seconds) with the real
// binary, on a terminal and not.
func TestVerifyProgress(t *testing.T) {
	bin := vm2imageBinary(t)
	root, archive := webVMImage(t, bin)
	t.Run("terminal", func(t *testing.T) { verifyOnTerminal(t, bin, root, archive) })
	t.Run("plain and JSON", func(t *testing.T) { verifyPlainAndJSON(t, bin, root, archive) })
}

// verifyOnTerminal runs verify under a pseudo-terminal (script(1)): while the compare phase
// reads the image and hashes the VM's files its line shows bytes done of the total the
// manifests give, the rate and the time left; the finished phases say done with their time, and
// no spinner is drawn.
func verifyOnTerminal(t *testing.T, bin, root, archive string) {
	testenv.RequireCommands(t, "script")
	b, err := exec.Command("script", "-qec", bin+" verify "+archive+" dir:"+root+" --cache-dir "+convertCacheDir(), "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("verify under a terminal: %v\n%s", err, b)
	}
	s := string(b)
	running := regexp.MustCompile(`compare +[0-9.]+m?s +[0-9.]+ [KMG]iB of [0-9.]+ [KMG]iB \(\d+%\), [0-9.]+ [KMG]?i?B/s, [0-9.]+m?s left`)
	if !running.MatchString(s) {
		t.Errorf("no compare line with bytes, total, rate and time left:\n%q", s)
	}
	for _, p := range []string{"open", "compare"} {
		if !regexp.MustCompile(`\x1b\[2K` + p + ` +done [0-9.]+m?s`).MatchString(s) {
			t.Errorf("%s is not shown done with its time:\n%q", p, s)
		}
	}
	if strings.ContainsAny(s, "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏") {
		t.Errorf("a spinner was drawn:\n%q", s)
	}
	if !strings.Contains(s, "EQUAL") {
		t.Errorf("verify did not find the image equal:\n%s", s)
	}
}

// verifyPlainAndJSON: without a terminal verify prints plain lines with the compare phase's
// bytes of the total; with --json-progress, bytes events carry done, total, rate and time left,
// and the last one reaches the total; --quiet prints no progress.
func verifyPlainAndJSON(t *testing.T, bin, root, archive string) {
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"verify", archive, "dir:" + root, "--cache-dir", convertCacheDir()}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("verify %v: %v\n%s", args, err, stderr.String())
		}
		return stderr.String()
	}
	plain := run()
	if !regexp.MustCompile(`(?m)^vm2image: compare: [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]iB \(\d+%\)`).MatchString(plain) ||
		!regexp.MustCompile(`(?m)^vm2image: compare done in `).MatchString(plain) || strings.Contains(plain, "\x1b[") {
		t.Errorf("plain progress:\n%s", plain)
	}
	var sawETA, sawDone bool
	var last, total int64
	sc := bufio.NewScanner(strings.NewReader(run("--json-progress")))
	for sc.Scan() {
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
			if ev.Phase != "compare" || ev.Total < 50<<20 || ev.Done > 0 && ev.Rate <= 0 {
				t.Errorf("bytes event %+v: want the compare phase's bytes of a known total, with a rate", ev)
			}
			sawETA = sawETA || ev.ETA != nil
			last, total = ev.Done, ev.Total
		case "done":
			sawDone = sawDone || ev.Phase == "compare" && ev.Seconds > 0
		}
	}
	if !sawETA || !sawDone || last < total*9/10 {
		t.Errorf("JSON progress: time left seen %v, compare done %v, last bytes %d of %d", sawETA, sawDone, last, total)
	}
	if q := run("--quiet"); strings.Contains(q, "vm2image: compare") {
		t.Errorf("--quiet printed progress:\n%s", q)
	}
}
