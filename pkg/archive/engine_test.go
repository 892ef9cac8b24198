package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestApplyLayerRefusesWhatEnginesApplyOtherwise: a layer applied on a tree (the layers below:
// a real directory etc with a file, a file f, the symlink bin -> usr/bin) is refused when an
// engine would make of it something else than this applier does; the layers engines and
// vm2image make are applied.
func TestApplyLayerRefusesWhatEnginesApplyOtherwise(t *testing.T) {
	lower := func(t *testing.T) string {
		_, root := arena(t)
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
		must(os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755))
		must(os.WriteFile(filepath.Join(root, "etc", "hostname"), []byte("vm\n"), 0o644))
		must(os.WriteFile(filepath.Join(root, "f"), []byte("f\n"), 0o644))
		must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
		return root
	}
	refused := map[string][]ent{
		"opaque marker at the root":      {{name: ".wh..wh..opq"}},
		"whiteout, then the same name":   {{name: ".wh.etc"}, {name: "etc/", typ: tar.TypeDir}},
		"entry, then its whiteout":       {{name: "etc/x", body: "x"}, {name: "etc/.wh.x"}},
		"whiteout in a missing dir":      {{name: "gone/.wh.x"}},
		"whiteout in a file":             {{name: "f/.wh.x"}},
		"whiteout below a lower symlink": {{name: "bin/.wh.nothing"}},
		"file below a lower symlink":     {{name: "bin/sh", body: "evil"}},
		"hard link to a lower file":      {{name: "etc/x", link: "etc/hostname", typ: tar.TypeLink}},
		"hard link before its target":    {{name: "etc/x", link: "etc/y", typ: tar.TypeLink}, {name: "etc/y", body: "y"}},
	}
	for name, ents := range refused {
		t.Run(name, func(t *testing.T) {
			err := Apply(context.Background(), lower(t), bytes.NewReader(buildTar(t, ents)), Layer())
			if !errors.Is(err, ErrEngineDiffers) {
				t.Fatalf("Apply error = %v; want ErrEngineDiffers", err)
			}
		})
	}
	accepted := map[string][]ent{
		"whiteout of a lower file":        {{name: "etc/.wh.hostname"}},
		"opaque directory":                {{name: "etc/", typ: tar.TypeDir}, {name: "etc/.wh..wh..opq"}, {name: "etc/new", body: "n"}},
		"hard link to the layer's file":   {{name: "etc/y", body: "y"}, {name: "etc/x", link: "etc/y", typ: tar.TypeLink}},
		"file through the real directory": {{name: "usr/bin/sh", body: "sh"}},
		"new directories":                 {{name: "srv/data/x", body: "x"}, {name: "srv/data/.wh.y"}},
		"a directory over a lower file":   {{name: "f/", typ: tar.TypeDir}, {name: "f/x", body: "x"}},
	}
	for name, ents := range accepted {
		t.Run(name, func(t *testing.T) {
			if err := Apply(context.Background(), lower(t), bytes.NewReader(buildTar(t, ents)), Layer()); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		})
	}
}
