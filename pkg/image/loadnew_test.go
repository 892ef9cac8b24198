package image

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
)

// TestLoadNewSendsOnlyWhatTheEngineLacks: an image of three layers is loaded whole; a second
// image sharing its first two layers is loaded by LoadNew with the first as a known image: two
// blobs are left out, the engine ends with the second image (same ID and layers as the image
// says), and the pin tag names it. Without a known image, everything is sent.
func TestLoadNewSendsOnlyWhatTheEngineLacks(t *testing.T) {
	engine := requireEngine(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	suffix := fmt.Sprint(time.Now().UnixNano())
	layer := func(name, body string) LayerFile {
		return LayerFile{Path: writeTarFile(t, dir, name+".tar", []tarEntry{{name: name, body: body}}), Comment: name}
	}
	spec := ConfigSpec{Created: time.Unix(1700000000, 0)}
	mk := func(files ...LayerFile) *assembled {
		img, err := Assemble(ctx, empty.Image, files, spec, AssembleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { img.(*assembled).Close() })
		return img.(*assembled)
	}
	a, b, c := layer("a", "base "+suffix), layer("b", "packages "+suffix), layer("c", "vm one")
	first := mk(a, b, c)
	second := mk(a, b, layer("c2", "vm two, changed"))
	tag1, tag2, pin := "vm2image-test/loadnew:one-"+suffix, "vm2image-test/loadnew:two-"+suffix, "vm2image-test/loadnew:pin-"+suffix
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag1, tag2, pin).Run() })

	if n, err := LoadNew(ctx, first, tag1, engine, LoadOptions{}); err != nil || n != 0 {
		t.Fatalf("first load: %d layers left out, %v; want 0, nil", n, err)
	}
	n, err := LoadNew(ctx, second, tag2, engine, LoadOptions{Known: []string{"vm2image-test/absent:" + suffix, tag1}, Pin: pin})
	if err != nil || n != 2 {
		t.Fatalf("second load: %d layers left out, %v; want 2, nil", n, err)
	}
	id, err := second.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{tag2, pin} {
		res, err := engine.ImageInspect(context.Background(), ref)
		if err != nil {
			t.Fatalf("inspecting %s: %v", ref, err)
		}
		if res.ID != id.String() || len(res.RootFS.Layers) != 3 {
			t.Errorf("%s: ID %s with %d layers, want %s with 3", ref, res.ID, len(res.RootFS.Layers), id)
		}
	}
}
