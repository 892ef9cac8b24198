package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/archive"
)

// TestAttackWhiteoutBelowSymlink is the review's attack on the grained record (and the single
// packages layer) taken from the registry cache: the attacker's configuration layer holds one
// whiteout, "bin/.wh.nothing", below the base's "bin -> usr/bin". The Docker engine (overlay2)
// makes "bin" a directory of that layer (the whiteout's implied parent), hiding the base's
// symlink: in the container /bin is an empty directory. The converter's base+packages tree
// (archive.Apply, chroot semantics) follows the symlink and keeps "bin -> usr/bin", so the VM
// diff writes nothing there; verify's flattener ignores a whiteout below a non-directory and
// sees "bin -> usr/bin" too: verify says EQUAL for an image whose /bin is empty (lib64 the same:
// no dynamic binary starts).
func TestAttackWhiteoutBelowSymlink(t *testing.T) {
	base := layerTar(t, te{name: "usr/"}, te{name: "usr/bin/"}, te{name: "usr/bin/sh", body: "shell", mode: 0o755}, te{name: "bin->usr/bin"})
	cfg := layerTar(t, te{name: "bin/.wh.nothing"})

	// The engine's view, when there is one: bin is a directory.
	engine := ""
	if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "version").Run() == nil {
		testenv.RequireDocker(t)
		engine = engineType(t, testImage(t, nil, base, cfg), "bin")
		if engine != "dir" {
			t.Fatalf("the engine shows bin as %q (the attack assumes a directory)", engine)
		}
	} else {
		engine = "dir" // what the run of 2026-12-03 (Docker 20.10.24, overlay2) showed
	}

	// verify's view.
	got := dump(flattenTars(t, base, cfg))
	if !strings.HasPrefix(got["bin"], engine) {
		t.Errorf("verify's flattener shows bin as %q, the engine as a %s", got["bin"], engine)
	}

	// The converter's base+packages tree.
	root := t.TempDir()
	for _, l := range [][]byte{base, cfg} {
		if err := archive.Apply(context.Background(), root, bytes.NewReader(l), archive.Layer()); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Lstat(filepath.Join(root, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		t.Errorf("the converter's tree keeps bin as %s, the engine shows a %s: the VM diff cannot undo it", fi.Mode().Type(), engine)
	}
}

// engineType loads img into the engine, exports a container of it and returns the type of p.
func engineType(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	tag, err := name.NewTag("vm2image-review3/whiteout:latest")
	if err != nil {
		t.Fatal(err)
	}
	archivePath := filepath.Join(t.TempDir(), "img.tar")
	if err := tarball.WriteToFile(archivePath, tag, img); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("docker", "load", "-i", archivePath).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag.String()).Run() })
	out, err := exec.Command("docker", "create", tag.String(), "/x").Output()
	if err != nil {
		t.Fatalf("docker create: %v", err)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	cmd := exec.Command("docker", "export", id)
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	tr := tar.NewReader(r)
	typ := "absent"
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Trim(h.Name, "/") != p {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			typ = "dir"
		case tar.TypeSymlink:
			typ = "symlink"
		default:
			typ = "other"
		}
	}
	return typ
}

// TestAttackRootOpaque is the review's attack with a hostile payload (or bundle) layer and an
// opaque marker at the root of the configuration layer, both from the registry cache: the
// engine (overlay2) ignores an opaque marker on a layer's root, so the payload's
// etc/ld.so.preload stays in the container; the converter's tree and verify's flattener honour
// it (the tree loses the payload, so the VM diff writes no whiteout for it) and verify says EQUAL.
func TestAttackRootOpaque(t *testing.T) {
	base := layerTar(t, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})
	payload := layerTar(t, te{name: "etc/"}, te{name: "etc/ld.so.preload", body: "/usr/lib/evil.so\n"})
	cfg := layerTar(t, te{name: ".wh..wh..opq"}, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})

	engine := "other" // what the run of 2026-12-03 (Docker 20.10.24, overlay2) showed
	if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "version").Run() == nil {
		testenv.RequireDocker(t)
		engine = engineType(t, testImage(t, nil, base, payload, cfg), "etc/ld.so.preload")
		if engine == "absent" {
			t.Fatalf("the engine honours the root's opaque marker (the attack assumes it does not)")
		}
	}
	if _, ok := dump(flattenTars(t, base, payload, cfg))["etc/ld.so.preload"]; !ok {
		t.Errorf("verify's flattener lacks etc/ld.so.preload, the engine holds it")
	}
	root := t.TempDir()
	for _, l := range [][]byte{base, payload, cfg} {
		if err := archive.Apply(context.Background(), root, bytes.NewReader(l), archive.Layer()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/ld.so.preload")); err != nil {
		t.Errorf("the converter's tree lacks etc/ld.so.preload (%v), the engine holds it: the VM diff writes no whiteout for it", err)
	}
}

// TestAttackWhiteoutThenSameDir: the configuration layer whites out "etc" and then holds an
// "etc/" of its own. The engine turns the whiteout into a device node that the directory
// entry replaces, without an opaque mark: the lower layers' etc (a hostile payload's
// etc/ld.so.preload) shows through. The converter's tree and verify's flattener delete it.
func TestAttackWhiteoutThenSameDir(t *testing.T) {
	base := layerTar(t, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})
	payload := layerTar(t, te{name: "etc/"}, te{name: "etc/ld.so.preload", body: "/usr/lib/evil.so\n"})
	cfg := layerTar(t, te{name: ".wh.etc"}, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})

	engine := "other"
	if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "version").Run() == nil {
		testenv.RequireDocker(t)
		engine = engineType(t, testImage(t, nil, base, payload, cfg), "etc/ld.so.preload")
		if engine == "absent" {
			t.Fatalf("the engine hides the lower etc (the attack assumes it does not)")
		}
	}
	if _, ok := dump(flattenTars(t, base, payload, cfg))["etc/ld.so.preload"]; !ok {
		t.Errorf("verify's flattener lacks etc/ld.so.preload, the engine holds it")
	}
	root := t.TempDir()
	for _, l := range [][]byte{base, payload, cfg} {
		if err := archive.Apply(context.Background(), root, bytes.NewReader(l), archive.Layer()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/ld.so.preload")); err != nil {
		t.Errorf("the converter's tree lacks etc/ld.so.preload (%v), the engine holds it", err)
	}
}
