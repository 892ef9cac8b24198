package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
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

// TestAttackLayersTheEngineAppliesOtherwise: layers (a configuration layer or bundle from the
// registry cache, a hostile base image's) that the Docker engine (overlay2) applies otherwise
// than a chroot-like reading: an image verify said EQUAL held in the container what the VM
// lacks. The engine is asked first (docker load, create, export) that it shows the attack's
// path as the attack assumes; then verify's flattener and the converter's layer apply must both
// refuse the stack (archive.ErrEngineDiffers), never read it their way.
func TestAttackLayersTheEngineAppliesOtherwise(t *testing.T) {
	etc := layerTar(t, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})
	payload := layerTar(t, te{name: "etc/"}, te{name: "etc/ld.so.preload", body: "/usr/lib/evil.so\n"})
	merged := layerTar(t, te{name: "usr/"}, te{name: "usr/bin/"}, te{name: "usr/bin/sh", body: "shell", mode: 0o755}, te{name: "bin->usr/bin"})
	for _, tc := range []struct {
		name   string
		layers [][]byte
		path   string // what the engine shows otherwise
		engine string // as what: dir, symlink, other (a file) or absent
	}{
		// overlayfs ignores an opaque marker on a layer's root: the payload's file stays.
		{"opaque marker at the root", [][]byte{etc, payload,
			layerTar(t, te{name: ".wh..wh..opq"}, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})}, "etc/ld.so.preload", "other"},
		// The directory entry replaces the whiteout's device node, with no opaque mark: the
		// lower etc shows through.
		{"whiteout, then the same name", [][]byte{etc, payload,
			layerTar(t, te{name: ".wh.etc"}, te{name: "etc/"}, te{name: "etc/hostname", body: "vm"})}, "etc/ld.so.preload", "other"},
		// The whiteout's implied parent is a directory of the layer, hiding bin -> usr/bin:
		// /bin is empty in the container.
		{"whiteout below a symlink", [][]byte{merged, layerTar(t, te{name: "bin/.wh.nothing"})}, "bin", "dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "version").Run() == nil {
				testenv.RequireDocker(t)
				if got := engineType(t, testImage(t, nil, tc.layers...), tc.path); got != tc.engine {
					t.Fatalf("the engine shows %s as %q, the attack assumes %q", tc.path, got, tc.engine)
				}
			}
			f := newFlattener(nil)
			var err error
			for k, l := range tc.layers {
				if err = f.apply(context.Background(), int32(k), bytes.NewReader(l)); err != nil {
					break
				}
			}
			if !errors.Is(err, archive.ErrEngineDiffers) {
				t.Errorf("verify's flattener: %v; want archive.ErrEngineDiffers (it would say what the container does not hold)", err)
			}
			root := t.TempDir()
			for _, l := range tc.layers {
				if err = archive.Apply(context.Background(), root, bytes.NewReader(l), archive.Layer()); err != nil {
					break
				}
			}
			if !errors.Is(err, archive.ErrEngineDiffers) {
				t.Errorf("the converter's layer apply: %v; want archive.ErrEngineDiffers (the VM diff would not undo what the container holds)", err)
			}
		})
	}
}

// engineType loads img into the engine, exports a container of it and returns the type of p:
// dir, symlink, other or absent.
func engineType(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	tag, err := name.NewTag("vm2image-test/engine-differs:latest")
	must(t, err)
	archivePath := filepath.Join(t.TempDir(), "img.tar")
	must(t, tarball.WriteToFile(archivePath, tag, img))
	if out, err := exec.Command("docker", "load", "-i", archivePath).CombinedOutput(); err != nil {
		t.Fatalf("docker load: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", tag.String()).Run() })
	out, err := exec.Command("docker", "create", tag.String(), "/x").Output()
	if err != nil {
		t.Fatalf("docker create: %v", err)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	cmd := exec.Command("docker", "export", id)
	r, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	defer func() { _ = cmd.Wait() }()
	tr := tar.NewReader(r)
	typ := "absent"
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
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
