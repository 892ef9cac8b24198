package convert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockOutput: a second lock of the same -o fails with ErrOutputBusy while the first is
// held; another -o in the same directory is free; after unlock the path can be locked again
// and no lock file is left.
func TestLockOutput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "img.tar")
	unlock, err := lockOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockOutput(out); !errors.Is(err, ErrOutputBusy) {
		t.Errorf("second lock: %v, want ErrOutputBusy", err)
	}
	other, err := lockOutput(filepath.Join(dir, "other.tar"))
	if err != nil {
		t.Errorf("lock of another -o: %v", err)
	} else if err := other(); err != nil {
		t.Error(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := lockOutput(out)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	must(t, again())
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestContextRollback: a failed conversion removes the context files it created and only those:
// a user's file, and a file it replaced, stay.
func TestContextRollback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img.tar.context")
	must(t, os.Mkdir(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "NOTES.md"), []byte("mine"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM old"), 0o644))
	c := &contextWriter{dir: dir}
	must(t, c.bytes("Dockerfile", []byte("FROM new"), 0o644))
	must(t, c.bytes("compose.yaml", []byte("services: {}"), 0o644))
	c.rollback()
	names := map[string]bool{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names[e.Name()] = true
	}
	if !names["NOTES.md"] || !names["Dockerfile"] || names["compose.yaml"] || len(names) != 2 {
		t.Errorf("after rollback: %v; want NOTES.md and Dockerfile only", names)
	}

	fresh := &contextWriter{dir: filepath.Join(t.TempDir(), "new.context")}
	must(t, fresh.bytes("Dockerfile", []byte("FROM x"), 0o644))
	fresh.rollback()
	if _, err := os.Stat(fresh.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a context directory the run created is left: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestParseOptions: every enum refuses an unknown value with ErrInvalidOption and names the
// flag and the values it takes.
func TestParseOptions(t *testing.T) {
	for name, parse := range map[string]func(string) error{
		"--format":           func(s string) error { _, err := ParseFormat(s); return err },
		"--transfer":         func(s string) error { _, err := ParseTransfer(s); return err },
		"--builder":          func(s string) error { _, err := ParseBuilder(s); return err },
		"--strategy":         func(s string) error { _, err := ParseStrategy(s); return err },
		"--compression":      func(s string) error { _, err := ParseCompression(s); return err },
		"--wire-compression": func(s string) error { _, err := ParseWireCompression(s); return err },
	} {
		if err := parse(""); err != nil {
			t.Errorf("%s default: %v", name, err)
		}
		err := parse("bogus")
		if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), `"bogus"`) {
			t.Errorf("%s bogus: %v", name, err)
		}
	}
	if s, _ := ParseStrategy(""); s != DefaultStrategy {
		t.Errorf("default strategy %s", s)
	}
}
