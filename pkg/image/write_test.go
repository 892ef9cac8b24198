package image

import (
	"archive/tar"
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/internal/testenv"
)

// tinyDisk mounts a 1 MiB tmpfs for the test.
func tinyDisk(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "mount", "umount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// imageWithRandomLayer is a small base plus a 4 MiB layer that does not compress.
func imageWithRandomLayer(t *testing.T) v1.Image {
	t.Helper()
	random := make([]byte, 4<<20)
	rand.New(rand.NewSource(2)).Read(random)
	layer := LayerFile{Path: writeTarFile(t, t.TempDir(), "big.tar", []tarEntry{
		{name: "data/", typ: tar.TypeDir}, {name: "data/random.bin", body: string(random)},
	}), Comment: "vm2image: vm diff"}
	img, err := Assemble(context.Background(), smallBase(t, blobStore{dir: t.TempDir()}), []LayerFile{layer}, testSpec(),
		AssembleOptions{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestWriteDockerArchiveDiskFull(t *testing.T) {
	disk := tinyDisk(t)
	img := imageWithRandomLayer(t)
	out := filepath.Join(disk, "image.tar")
	err := WriteDockerArchive(context.Background(), out, img, "vm2image-test/full:1")
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device in "+disk) {
		t.Fatalf("error = %v; want a clear ENOSPC error", err)
	}
	t.Logf("%v", err)
	if entries, _ := os.ReadDir(disk); len(entries) != 0 {
		t.Fatalf("left on the full disk: %v", entries)
	}

	// An existing file at the path is left as it was.
	os.WriteFile(out, []byte("previous image\n"), 0o644)
	if err := WriteDockerArchive(context.Background(), out, img, "vm2image-test/full:1"); err == nil {
		t.Fatal("second write succeeded on a full disk")
	}
	if b, _ := os.ReadFile(out); string(b) != "previous image\n" {
		t.Errorf("the previous file became %d bytes", len(b))
	}
	if err := WriteOCILayout(context.Background(), filepath.Join(disk, "layout"), img, "v1"); err == nil ||
		!errors.Is(err, syscall.ENOSPC) {
		t.Errorf("OCI layout on a full disk: %v", err)
	}
	if entries, _ := os.ReadDir(disk); len(entries) != 1 {
		t.Errorf("left on the full disk: %v", entries)
	}

	// A small image fits and replaces the old file.
	small := smallBase(t, blobStore{dir: t.TempDir()})
	if err := WriteDockerArchive(context.Background(), out, small, "vm2image-test/small:1"); err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustDigest(t, back), mustDigest(t, small); a != b {
		t.Errorf("archive holds %s, want %s", a, b)
	}
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestWriteDockerArchiveCanceled(t *testing.T) {
	img := imageWithRandomLayer(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteDockerArchive(ctx, filepath.Join(dir, "x.tar"), img, "x:1"); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v; want context.Canceled", err)
	}
	if err := WriteOCILayout(ctx, filepath.Join(dir, "layout"), img, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v; want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
