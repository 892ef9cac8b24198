package workdir

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNewSweepsOnlyDeadRuns(t *testing.T) {
	parent := t.TempDir()
	live, err := New(parent, "vm2image-x-")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(live.Path())
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("new directory: %v %v, want 0700", fi.Mode(), err)
	}
	dead := filepath.Join(parent, "vm2image-x-dead")
	oldStaging := filepath.Join(parent, "vm2image-x.new-old")
	freshStaging := filepath.Join(parent, "vm2image-x.new-fresh")
	other := filepath.Join(parent, "vm2image-y-other")
	for _, d := range []string{dead, oldStaging, freshStaging, other} {
		if err := os.MkdirAll(filepath.Join(d, "root/etc"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * stagingStale)
	if err := os.Chtimes(oldStaging, old, old); err != nil {
		t.Fatal(err)
	}
	second, err := New(parent, "vm2image-x-")
	if err != nil {
		t.Fatal(err)
	}
	defer second.Remove()
	for d, want := range map[string]bool{live.Path(): true, dead: false, oldStaging: false, freshStaging: true, other: true, second.Path(): true} {
		if _, err := os.Stat(d); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(d), err == nil, want)
		}
	}
	if err := live.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live.Path()); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", live.Path(), err)
	}
}
