package convert

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/pkg/image"
)

var pgFiles = []vmFile{
	{path: "var/lib/postgresql", dir: true}, {path: "var/lib/postgresql/15", dir: true},
	{path: "var/lib/postgresql/15/main", dir: true},
	{path: "var/lib/postgresql/15/main/PG_VERSION", body: "15\n"},
	{path: "var/lib/postgresql/15/main/base.dat", body: "the VM's rows"},
}

// TestRunVolumesAuto: the VM's PostgreSQL directory goes into an archive beside -o (its files,
// relative), the image shows the directory empty although the base had a cluster there, and
// compose.yaml mounts the named volume.
func TestRunVolumesAuto(t *testing.T) {
	initPath, _ := fakeInit(t)
	base := append(slices.Clone(baseFiles), vmFile{path: "var/lib/postgresql", dir: true},
		vmFile{path: "var/lib/postgresql/fresh-cluster", body: "from the packages"})
	baseDir, _ := newBaseLayout(t, base, hostArch)
	o := testOptions(t, newVM(t, append(slices.Clone(vmFiles), pgFiles...)), baseDir, initPath)
	o.Output, o.Tag, o.VolumesAuto, o.ContextLayers = filepath.Join(t.TempDir(), "img.tar"), "example/db:1", true, true
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Volumes) != 1 || rep.Volumes[0].Path != "/var/lib/postgresql" || rep.Volumes[0].Name != "db-var-lib-postgresql" || rep.Fit == nil {
		t.Fatalf("volumes %+v fit %v", rep.Volumes, rep.Fit)
	}
	if names := tarNames(t, rep.Volumes[0].Archive); !slices.Equal(names, []string{"./", "./15/", "./15/main/", "./15/main/PG_VERSION", "./15/main/base.dat"}) {
		t.Errorf("archive names %q", names)
	}
	flat := t.TempDir()
	img, err := tarball.ImageFromPath(o.Output, nil)
	must(t, err)
	ls, err := img.Layers()
	must(t, err)
	for _, l := range ls {
		rc, err := l.Uncompressed()
		must(t, err)
		must(t, image.ApplyLayer(context.Background(), flat, rc))
		rc.Close()
	}
	if left, err := os.ReadDir(filepath.Join(flat, "var/lib/postgresql")); err != nil || len(left) != 0 {
		t.Errorf("the image's /var/lib/postgresql: %v %v; want it empty", left, err)
	}
	compose, err := os.ReadFile(filepath.Join(contextDir(o.Output), "compose.yaml"))
	if err != nil || !strings.Contains(string(compose), "- db-var-lib-postgresql:/var/lib/postgresql") {
		t.Errorf("compose.yaml: %v\n%s", err, compose)
	}
}

// TestRunVolumesFailure: a conversion that fails after the volumes phase leaves no archive; an
// archive already there is not replaced without Force.
func TestRunVolumesFailure(t *testing.T) {
	initPath, _ := fakeInit(t)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	root := newVM(t, append(slices.Clone(vmFiles), pgFiles...))
	o := testOptions(t, root, baseDir, "/nonexistent/vm2image-init")
	out := t.TempDir()
	o.Output, o.Volumes = filepath.Join(out, "img.tar"), []string{"/var/lib/postgresql"}
	rep, err := Run(context.Background(), o)
	if err == nil || rep.FailedPhase != PhaseRuntime {
		t.Fatalf("conversion without its init: %v, phase %s", err, rep.FailedPhase)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	o = testOptions(t, root, baseDir, initPath)
	o.Output, o.Volumes = filepath.Join(out, "img.tar"), []string{"/var/lib/postgresql"}
	rep, err = Run(context.Background(), o)
	must(t, err)
	archive := rep.Volumes[0].Archive
	if archive != VolumeArchive(o.Output, rep.Volumes[0].Name) {
		t.Errorf("archive %s not beside -o", archive)
	}
	must(t, os.Remove(o.Output))
	os.RemoveAll(contextDir(o.Output))
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), archive+" exists") {
		t.Errorf("second conversion over the archive: %v", err)
	}
	if _, err := os.Stat(archive); err != nil {
		t.Errorf("the first archive is gone: %v", err)
	}
	o.Volumes = []string{"/proc/self"}
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("a volume under /proc: %v", err)
	}
}

func tarNames(t *testing.T, p string) []string {
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		must(t, err)
		names = append(names, h.Name)
	}
}
