package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/services"
)

// TestFailureKeepsOthers: a service that exits 3 does not stop the others; when the last one
// ends, the init exits with the first failure's code.
func TestFailureKeepsOthers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	// "other" ends only after the test saw "fails" fail and opened the gate.
	other := sh("other", `while [ ! -e `+gate+` ]; do sleep 0.05; done; exit 0`)
	p := startInit(t, services.Config{Services: []services.Service{other, sh("fails", "exit 3")}})
	p.waitLog(`fails failed with code 3: the other services keep running`, 5*time.Second)
	ended := regexp.MustCompile(`other \(pid \d+\) (exited|was killed)`).MatchString(p.log())
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ended {
		t.Error("the other service ended before the gate opened")
	}
	if code := p.wait(5 * time.Second); code != 3 {
		t.Errorf("exit code %d, want 3 (the first failure)", code)
	}
	if !strings.Contains(p.log(), "other ended with code 0: it was the last service") {
		t.Error("the other service did not run to its end")
	}
}

// TestMainServiceStopsOthers: a main service that ends stops the others and decides the code.
func TestMainServiceStopsOthers(t *testing.T) {
	t.Parallel()
	m := sh("main", "exit 5")
	m.Main = true
	p := startInit(t, services.Config{Services: []services.Service{sh("other", "exec sleep 1000"), m}})
	p.servicePID("other")
	if code := p.wait(5 * time.Second); code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}
	if !regexp.MustCompile(`other \(pid \d+\) was killed by SIGTERM`).MatchString(p.log()) {
		t.Error("the other service was not stopped with SIGTERM")
	}
}

// TestStopOnFailure: with stop_on_failure, the first failure stops the others.
func TestStopOnFailure(t *testing.T) {
	t.Parallel()
	p := startInit(t, services.Config{StopOnFailure: true,
		Services: []services.Service{sh("other", "exec sleep 1000"), sh("fails", "exit 7")}})
	if code := p.wait(5 * time.Second); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	if !strings.Contains(p.log(), "stop_on_failure") {
		t.Error("no stop_on_failure line")
	}
}

// TestRestartSecAndIgnoreFailure: restart_sec is the first delay; an ignored failure counts as
// success for the policy and the exit code.
func TestRestartSecAndIgnoreFailure(t *testing.T) {
	t.Parallel()
	s := sh("slow", "exit 1")
	s.Restart, s.RestartSec = services.RestartOnFailure, 300*time.Millisecond
	p := startInit(t, services.Config{Services: []services.Service{s}, RestartsPerMinute: 1})
	if code := p.wait(5 * time.Second); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(p.log(), "restarting slow in 300ms") {
		t.Error("restart_sec not used")
	}
	ig := sh("ignored", "exit 9")
	ig.IgnoreFailure, ig.Restart = true, services.RestartOnFailure
	p = startInit(t, services.Config{Services: []services.Service{ig}})
	if code := p.wait(5 * time.Second); code != 0 || strings.Contains(p.log(), "restarting") {
		t.Errorf("exit code %d (want 0, no restart)", code)
	}
}

// TestUnitFeatures: pre-start commands, env files read at start, $VAR expansion, umask, the
// kill signal, tmpfiles and service directories under --root.
func TestUnitFeatures(t *testing.T) {
	testenv.RequireRoot(t)
	t.Parallel()
	root := t.TempDir()
	out := filepath.Join(root, "out")
	envFile := filepath.Join(root, "app.env")
	if err := os.WriteFile(envFile, []byte("# comment\nexport GREETING=\"hello there\"\nPORT=8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/tmpfiles.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfiles := "d /run/sshd 0751 root root -\nf /run/flag 0600 nobody - - on\nL /run/link - - - - /etc/hostname\nd /etc/notrun\n"
	if err := os.WriteFile(filepath.Join(root, "usr/lib/tmpfiles.d/x.conf"), []byte(tmpfiles), 0o644); err != nil {
		t.Fatal(err)
	}
	s := services.Service{Name: "app", User: "root", Cwd: "/", ExpandEnv: true, UMask: "0077",
		EnvFiles: []services.EnvFile{{Path: envFile}, {Path: "/nonexistent", Optional: true}},
		Pre: []services.Command{{Argv: []string{"sh", "-c", "echo pre >> " + out}},
			{Argv: []string{"false"}, IgnoreFailure: true}},
		Argv:        []string{"sh", "-c", `trap 'echo int >> ` + out + `; exit 0' INT; echo "$0 ${GREETING}" >> ` + out + `; touch ` + out + `.new; while :; do sleep 0.05; done`, "${PORT}"},
		Directories: []services.Directory{{Path: "/run/app", Mode: "0750", Owned: true, Runtime: true}},
		KillSignal:  "SIGINT", Restart: services.RestartNo}
	p := startInit(t, services.Config{Services: []services.Service{s}}, "--root", root)
	p.servicePID("app")
	waitFile(t, out+".new", 5*time.Second) // the service's last step before its loop
	p.signal(syscall.SIGTERM)
	if code := p.wait(5 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
	b, _ := os.ReadFile(out)
	if got := string(b); got != "pre\n8080 hello there\nint\n" {
		t.Errorf("service output %q", got)
	}
	if fi, err := os.Stat(out + ".new"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("umask 0077 not applied: %v %v", fi, err)
	}
	checkMode(t, filepath.Join(root, "run/sshd"), 0o751|os.ModeDir)
	checkMode(t, filepath.Join(root, "run/app"), 0o750|os.ModeDir)
	checkMode(t, filepath.Join(root, "run/flag"), 0o600)
	if fi, err := os.Stat(filepath.Join(root, "run/flag")); err == nil && fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Error("run/flag not owned by nobody")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "run/flag")); string(b) != "on" {
		t.Errorf("run/flag holds %q", b)
	}
	if l, err := os.Readlink(filepath.Join(root, "run/link")); err != nil || l != "/etc/hostname" {
		t.Errorf("run/link: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/notrun")); err == nil {
		t.Error("a tmpfiles line outside /run was applied")
	}
}

func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	if fi.Mode()&(os.ModeType|os.ModePerm) != want {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
	}
}
