package convert

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/verify"
)

// TestPrefetchSameImage: a conversion whose VM side ran ahead (waited for, as beside an install)
// writes the very
// layers of one without it: every layer's diffID is the same, and the diff found the same
// changes; verify finds the image equal to the VM. Without an install, no prefetch runs.
func TestPrefetchSameImage(t *testing.T) {
	root := newVM(t, vmFiles)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	initPath, _ := fakeInit(t)
	diffIDs := func(noPrefetch bool) ([]string, *Report) {
		o := testOptions(t, root, baseDir, initPath)
		o.Output = filepath.Join(t.TempDir(), "img.tar")
		o.noPrefetch, o.prefetchAlways = noPrefetch, !noPrefetch
		var logged []string
		o.Logf = func(f string, a ...any) { logged = append(logged, f) }
		rep, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ahead := false
		for _, l := range logged {
			ahead = ahead || strings.HasPrefix(l, "VM hashed ahead")
		}
		if ahead == noPrefetch {
			t.Errorf("noPrefetch %v: the prefetch ran: %v", noPrefetch, ahead)
		}
		img, err := tarball.ImageFromPath(o.Output, nil)
		must(t, err)
		if !noPrefetch { // the image holds the VM
			src, err := source.OpenDir(root, "vm")
			must(t, err)
			defer src.Close()
			vr, err := verify.Image(context.Background(), img, src, verify.Options{Excludes: o.Excludes})
			must(t, err)
			if !vr.Equal {
				t.Errorf("verify: the image differs from the VM: %+v", vr.Differences)
			}
		}
		cf, err := img.ConfigFile()
		must(t, err)
		var ids []string
		for _, d := range cf.RootFS.DiffIDs {
			ids = append(ids, d.String())
		}
		return ids, rep
	}
	o := testOptions(t, root, baseDir, initPath)
	o.Output = filepath.Join(t.TempDir(), "img.tar")
	ran := false
	o.Logf = func(f string, a ...any) { ran = ran || strings.HasPrefix(f, "VM hash") }
	if _, err := Run(context.Background(), o); err != nil || ran {
		t.Errorf("without an install: %v, prefetch ran %v; want none", err, ran)
	}
	with, repWith := diffIDs(false)
	without, repWithout := diffIDs(true)
	if strings.Join(with, " ") != strings.Join(without, " ") {
		t.Errorf("layers with the prefetch %v, without %v", with, without)
	}
	a, b := repWith.Diff, repWithout.Diff
	a.Duration, b.Duration = 0, 0
	if a != b {
		t.Errorf("diff with the prefetch %+v, without %+v", a, b)
	}
}

// installFailVM is the test VM with a package the base lacks; the base has no apt-get, so the
// install fails (for real, in the builder's checks) while the prefetch is held running.
func installFailVM(t *testing.T) string {
	files := append([]vmFile(nil), vmFiles...)
	for i, f := range files {
		if f.path == "var/lib/dpkg/status" {
			files[i].body = dpkgStatus + "\nPackage: bar\nStatus: install ok installed\nPriority: optional\n" +
				"Section: misc\nInstalled-Size: 5\nArchitecture: all\nVersion: 3.0-1\nDescription: only in the VM\n"
		}
	}
	return newVM(t, files)
}

// TestPrefetchCancelledByFailedInstall: the install fails while the VM's side is still running;
// the conversion fails with the install's error, and before Run returns the prefetch has seen
// its context cancelled and ended: nothing is left running.
func TestPrefetchCancelledByFailedInstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the packages phase builds only as root")
	}
	root := installFailVM(t)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	initPath, _ := fakeInit(t)
	o := testOptions(t, root, baseDir, initPath)
	o.Output = filepath.Join(t.TempDir(), "img.tar")
	running, ended := make(chan struct{}), make(chan error, 1)
	prefetchHook = func(ctx context.Context) error {
		close(running)
		<-ctx.Done()                       // held until the conversion cancels it
		time.Sleep(300 * time.Millisecond) // slow to end: Run must wait for it
		ended <- ctx.Err()
		return ctx.Err()
	}
	t.Cleanup(func() { prefetchHook = nil })
	rep, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "building the packages layer") || !strings.Contains(err.Error(), "apt") {
		t.Fatalf("Run: %v; want the install's failure (no apt-get in the base)", err)
	}
	if rep.FailedPhase != PhasePackages {
		t.Errorf("failed phase %q, want %q", rep.FailedPhase, PhasePackages)
	}
	select {
	case <-running:
	default:
		t.Fatal("the prefetch never ran beside the install")
	}
	select {
	case cerr := <-ended:
		if !errors.Is(cerr, context.Canceled) {
			t.Errorf("prefetch ended with %v, want context.Canceled", cerr)
		}
	default:
		t.Error("Run returned while the prefetch was still running")
	}
	if _, err := os.Stat(o.Output); err == nil {
		t.Error("an output was written")
	}
	if left, _ := os.ReadDir(o.WorkDir); len(left) != 0 {
		t.Errorf("work directory not cleaned up: %v", left)
	}
}

// TestPrefetchFailureStopsConversion: the VM side fails while the base and packages phases run
// (injected: the agent cannot be made to fail at that moment for real here); the conversion
// stops with that failure named, not a bare "context canceled", and writes nothing.
func TestPrefetchFailureStopsConversion(t *testing.T) {
	root := newVM(t, vmFiles)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	initPath, _ := fakeInit(t)
	o := testOptions(t, root, baseDir, initPath)
	o.Output = filepath.Join(t.TempDir(), "img.tar")
	o.prefetchAlways = true
	gone := errors.New("agent connection lost")
	prefetchHook = func(ctx context.Context) error { return gone }
	t.Cleanup(func() { prefetchHook = nil })
	start := time.Now()
	_, err := Run(context.Background(), o)
	if !errors.Is(err, gone) || !errors.Is(err, errPrefetch) {
		t.Fatalf("Run: %v; want the prefetch's failure", err)
	}
	t.Logf("failed in %s: %v", time.Since(start).Round(time.Millisecond), err)
	if _, err := os.Stat(o.Output); err == nil {
		t.Error("an output was written")
	}
}
