package convert

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRunFailures: a conversion that fails says why and where in its report (Error,
// FailedPhase), returns the same error, leaves nothing at -o or in FILE.context/, cleans its
// work directory, and reports no figures of the phases it did not reach.
func TestRunFailures(t *testing.T) {
	initPath, _ := fakeInit(t)
	plan9 := slices.Clone(vmFiles)
	plan9[1] = vmFile{path: "etc/os-release", body: "ID=plan9\nVERSION_ID=4\n"}
	for _, tc := range []struct {
		name   string
		files  []vmFile
		arch   string
		edit   func(o *Options, out string)
		phase  string
		errHas string
		errIs  error
	}{
		{name: "source missing", edit: func(o *Options, _ string) { o.Source = "dir:/nonexistent/vm" },
			phase: PhaseConnect, errHas: "/nonexistent/vm"},
		{name: "no base for the OS", files: plan9, edit: func(o *Options, _ string) { o.Base = "auto" },
			phase: PhaseBase, errHas: "no base image known for plan9 4"},
		{name: "base for another arch", arch: "s390x",
			phase: PhaseBase, errHas: "s390x"},
		{name: "base layout missing", edit: func(o *Options, _ string) { o.Base = "oci:/nonexistent/layout" },
			phase: PhaseBase, errHas: "/nonexistent/layout"},
		{name: "init missing", edit: func(o *Options, _ string) { o.InitBinary = "/nonexistent/vm2image-init" },
			phase: PhaseRuntime, errHas: "reading the init binary"},
		{name: "output exists", edit: func(_ *Options, out string) { must(t, os.WriteFile(out, []byte("mine"), 0o644)) },
			phase: PhaseOutput, errIs: ErrOutputExists},
		{name: "output directory missing", edit: func(o *Options, _ string) { o.Output = "/nonexistent/dir/img.tar" },
			phase: PhaseOutput, errHas: "directory /nonexistent/dir does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, arch := vmFiles, hostArch
			if tc.files != nil {
				files = tc.files
			}
			if tc.arch != "" {
				arch = tc.arch
			}
			baseDir, _ := newBaseLayout(t, baseFiles, arch)
			o := testOptions(t, newVM(t, files), baseDir, initPath)
			outDir := t.TempDir()
			o.Output = filepath.Join(outDir, "img.tar")
			if tc.edit != nil {
				tc.edit(&o, o.Output)
			}
			before, _ := os.ReadDir(outDir)
			rep, err := Run(context.Background(), o)
			if err == nil {
				t.Fatal("conversion succeeded")
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("error %v; want %v containing %q", err, tc.errIs, tc.errHas)
			}
			if rep == nil {
				t.Fatal("no report")
			}
			if rep.Error != err.Error() || rep.FailedPhase != tc.phase {
				t.Errorf("report error %q phase %q; want %q in %s", rep.Error, rep.FailedPhase, err, tc.phase)
			}
			checkNothingWritten(t, o, outDir, before)
			checkFiguresStop(t, rep, tc.phase)
		})
	}
}

// checkNothingWritten: the output directory holds what it held before, and the work
// directory is empty again.
func checkNothingWritten(t *testing.T, o Options, outDir string, before []os.DirEntry) {
	t.Helper()
	after, _ := os.ReadDir(outDir)
	var b, a []string
	for _, e := range before {
		b = append(b, e.Name())
	}
	for _, e := range after {
		a = append(a, e.Name())
	}
	if !slices.Equal(a, b) {
		t.Errorf("output directory held %v, now %v", b, a)
	}
	if left, _ := os.ReadDir(o.WorkDir); len(left) != 0 {
		t.Errorf("work directory not cleaned up: %v", left)
	}
}

// checkFiguresStop: the phases run are those up to the failed one; the figures of later
// phases are zero.
func checkFiguresStop(t *testing.T, rep *Report, failed string) {
	t.Helper()
	order := []string{PhaseConnect, PhaseBase, PhasePackages, PhaseVolumes, PhaseDiff, PhaseRuntime, PhaseAssemble}
	var ran []string
	for _, p := range rep.Phases {
		ran = append(ran, p.Name)
	}
	want := order[:slices.Index(order, failed)+1]
	if failed == PhaseOutput {
		want = nil
	}
	if !slices.Equal(ran, want) {
		t.Errorf("phases run %v; want %v", ran, want)
	}
	reached := func(p string) bool { return slices.Contains(want, p) && p != failed }
	if !reached(PhaseBase) && rep.Base.Digest != "" {
		t.Errorf("base digest %s after a failure before the base", rep.Base.Digest)
	}
	if !reached(PhaseDiff) && (rep.DiffLayer != nil || rep.OriginalEntries != 0) {
		t.Errorf("diff figures %+v after a failure before the diff", rep.DiffLayer)
	}
	if rep.Image.Digest != "" || rep.Image.Output != "" {
		t.Errorf("image %+v after a failure", rep.Image)
	}
	if reached(PhaseDiff) && rep.DiffLayer == nil {
		t.Error("no diff figures though the diff ran")
	}
}

// TestRunInvalidOptions: option mistakes are refused before any phase, as ErrInvalidOption.
func TestRunInvalidOptions(t *testing.T) {
	initPath, _ := fakeInit(t)
	for _, edit := range []func(*Options){
		func(o *Options) { o.Format = "qcow2" },
		func(o *Options) { o.Transfer = "carrier-pigeon" },
		func(o *Options) { o.Strategy = "guess" },
		func(o *Options) { o.Compression = "lzma" },
		func(o *Options) { o.Builder = "podman" },
		func(o *Options) { o.SourceOptions.Compression = "xz" },
		func(o *Options) { o.Format, o.Output = FormatOCI, ""; o.Load = true },
		func(o *Options) { o.Output = "" },
	} {
		o := testOptions(t, "/nonexistent", "/nonexistent", initPath)
		o.Output = filepath.Join(t.TempDir(), "img.tar")
		edit(&o)
		rep, err := Run(context.Background(), o)
		if !errors.Is(err, ErrInvalidOption) || rep != nil {
			t.Errorf("%+v: error %v, report %v; want ErrInvalidOption and no report", o, err, rep)
		}
	}
}

// TestRunContextLayers: with ContextLayers the context holds the VM layer for `docker build`:
// the layer itself (linked or copied, owner-only) when it has no whiteouts, and without its
// whiteouts (which ADD would unpack as files) when it has some.
func TestRunContextLayers(t *testing.T) {
	initPath, _ := fakeInit(t)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	noDeletion := append(slices.Clone(vmFiles), vmFile{path: "srv/app/removed.txt", body: "base only\n"})
	for _, tc := range []struct {
		name      string
		files     []vmFile
		whiteouts int64
	}{{"no whiteouts", noDeletion, 0}, {"whiteouts", vmFiles, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t, newVM(t, tc.files), baseDir, initPath)
			o.Output, o.ContextLayers = filepath.Join(t.TempDir(), "img.tar"), true
			rep, err := Run(context.Background(), o)
			must(t, err)
			if rep.DiffLayer.Whiteouts != tc.whiteouts {
				t.Fatalf("%d whiteouts, want %d", rep.DiffLayer.Whiteouts, tc.whiteouts)
			}
			p := filepath.Join(contextDir(o.Output), "1-vm-diff.tar")
			fi, err := os.Stat(p)
			must(t, err)
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("context layer mode %v, want 0600", fi.Mode().Perm())
			}
			sum := sha256File(t, p)
			if same := sum == rep.DiffLayer.DiffID; same != (tc.whiteouts == 0) {
				t.Errorf("context layer %s, diff layer %s: want them equal only without whiteouts", sum, rep.DiffLayer.DiffID)
			}
			f, err := os.Open(p)
			must(t, err)
			defer f.Close()
			for tr := tar.NewReader(f); ; {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				must(t, err)
				if strings.HasPrefix(path.Base(h.Name), ".wh.") {
					t.Errorf("whiteout %s in the context's layer", h.Name)
				}
			}
		})
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}
