package helperbin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindOnPath: a binary on PATH is found; one nowhere is ErrNotFound, and the error says
// what it is for and which variable names it.
func TestFindOnPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "vm2image-test-helper")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got, err := Find("vm2image-test-helper", "a test", "VM2IMAGE_TEST"); err != nil || got != p {
		t.Errorf("Find: %q, %v; want %q", got, err, p)
	}
	_, err := Find("vm2image-test-absent", "the image's entrypoint", "VM2IMAGE_INIT")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "the image's entrypoint") || !strings.Contains(err.Error(), "VM2IMAGE_INIT") {
		t.Errorf("Find of an absent binary: %v", err)
	}
}

// TestFindBeside: the copy beside the executable wins over PATH's; a directory of that name
// there does not count.
func TestFindBeside(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "vm2image")
	if p, ok := beside(exe, "vm2image-init"); ok {
		t.Errorf("found %s in an empty directory", p)
	}
	if err := os.Mkdir(filepath.Join(dir, "vm2image-agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := beside(exe, "vm2image-agent"); ok {
		t.Error("a directory passed for the binary")
	}
	if err := os.WriteFile(filepath.Join(dir, "vm2image-init"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, ok := beside(exe, "vm2image-init"); !ok || p != filepath.Join(dir, "vm2image-init") {
		t.Errorf("beside: %q %v", p, ok)
	}
}
