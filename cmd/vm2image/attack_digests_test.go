package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/fswalk"
)

// TestAttackAlteredCachedRoot: the real vm2image converts a dir: VM twice with one cache root.
// The first conversion records the digests of the cached base root's files. Between the two,
// an attacker rewrites the cached copy of the base's /usr/bin/tool (same size, mtime put back)
// and corrupts a layer blob of the image cache. The second conversion must not trust the
// recorded digest (the VM's tool, the base's original, now differs from the cached root: it is
// in the VM's layer) and must not write an image from the altered blob.
func TestAttackAlteredCachedRoot(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	bin := vm2imageBinary(t)
	dir := t.TempDir()
	when := time.Unix(1700000000, 0)
	files := []tarEntry{
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/os-release", typ: tar.TypeReg, mode: 0o644, body: []byte("ID=debian\nVERSION_ID=\"12\"\n")},
		{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/tool", typ: tar.TypeReg, mode: 0o755, body: []byte("#!/bin/sh\necho a tool\n")},
	}
	var b bytes.Buffer
	writeTar(t, &b, files)
	raw := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, l)
	must(t, err)
	ref, err := name.ParseReference("digests/base:1")
	must(t, err)
	base := filepath.Join(dir, "base.tar")
	must(t, tarball.WriteToFile(base, ref, img))
	// The VM: the base's files, unchanged, and one of its own.
	vm := filepath.Join(dir, "vm")
	must(t, os.MkdirAll(filepath.Join(vm, "usr/bin"), 0o755))
	must(t, os.MkdirAll(filepath.Join(vm, "etc"), 0o755))
	for _, f := range files[1:] {
		if f.typ == tar.TypeReg {
			writeStampedFile(t, filepath.Join(vm, f.name), f.body, when)
		}
	}
	writeStampedFile(t, filepath.Join(vm, "etc/own"), []byte("the VM's own file\n"), when)
	cacheRoot := filepath.Join(dir, "cache")

	first := convertDirNoPackages(t, bin, vm, base, cacheRoot, filepath.Join(dir, "one.tar"))
	if first.Diff.Modified != 0 {
		t.Fatalf("first conversion: %d modified files, want 0", first.Diff.Modified)
	}
	// Digests of files changed within the racy window are not recorded: let the freshly
	// unpacked root age past it, and convert again to record them.
	tools, _ := filepath.Glob(filepath.Join(cacheRoot, "roots", "base-*", "usr", "bin", "tool"))
	if len(tools) != 1 {
		t.Fatalf("cached tool: %q", tools)
	}
	var st syscall.Stat_t
	must(t, syscall.Stat(tools[0], &st))
	time.Sleep(time.Until(time.Unix(0, st.Ctim.Nano()).Add(fswalk.RacyWindow + 100*time.Millisecond)))
	convertDirNoPackages(t, bin, vm, base, cacheRoot, filepath.Join(dir, "one-again.tar"))
	idx, _ := filepath.Glob(filepath.Join(cacheRoot, "images", "digests", "base-*.json"))
	if len(idx) != 1 {
		t.Fatalf("no digest index was recorded: %q", idx)
	}
	// The attack: the cached root's tool rewritten, same size, same mtime.
	evil := []byte("#!/bin/sh\nrm -rf /xy\n\n")
	if len(evil) != len(files[4].body) {
		t.Fatalf("test bug: %d bytes, want %d", len(evil), len(files[4].body))
	}
	writeStampedFile(t, tools[0], evil, time.Unix(1700000000, 0))

	second := convertDirNoPackages(t, bin, vm, base, cacheRoot, filepath.Join(dir, "two.tar"))
	if second.Diff.Modified != 1 {
		t.Errorf("after the cached root was altered: %d modified files, want 1 (usr/bin/tool): the recorded digest was trusted", second.Diff.Modified)
	}

	// The attack on the image cache: the base's compressed layer blob flipped in place (same
	// size). The next conversion takes the blob from the cache without recompressing it; it
	// must fail rather than write an image whose layer is not the one its digest names.
	blobs, _ := filepath.Glob(filepath.Join(cacheRoot, "images", "blobs", "sha256", "*"))
	if len(blobs) == 0 {
		t.Fatal("no blob in the image cache")
	}
	for _, p := range blobs {
		blob, err := os.ReadFile(p)
		must(t, err)
		blob[len(blob)/2] ^= 0x55
		must(t, os.WriteFile(p, blob, 0o600))
	}
	out := filepath.Join(dir, "three.tar")
	cmd := exec.Command(bin, "convert", "dir:"+vm, "--base", "docker-archive:"+base, "--no-packages",
		"--cache-dir", cacheRoot, "-o", out, "--no-context")
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	got, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(got), "altered in the store") {
		t.Errorf("conversion from an altered cached blob: %v, want an error naming the altered blob\n%s", err, got)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("%s was written from an altered blob", out)
	}
}

func writeStampedFile(t *testing.T, p string, body []byte, when time.Time) {
	t.Helper()
	must(t, os.WriteFile(p, body, 0o755))
	must(t, os.Chtimes(p, when, when))
}

// convertDir runs the real vm2image on dir:vm against the docker-archive base and returns its
// report.
func convertDirNoPackages(t *testing.T, bin, vm, base, cacheRoot, out string) *convert.Report {
	t.Helper()
	report := out + ".json"
	cmd := exec.Command(bin, "convert", "dir:"+vm, "--base", "docker-archive:"+base, "--no-packages",
		"--cache-dir", cacheRoot, "-o", out, "--no-context", "--report", report)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("vm2image convert: %v\n%s", err, b)
	} else if strings.Contains(string(b), "panic") {
		t.Fatalf("vm2image convert:\n%s", b)
	}
	var r convert.Report
	rb, err := os.ReadFile(report)
	must(t, err)
	must(t, json.Unmarshal(rb, &r))
	return &r
}
