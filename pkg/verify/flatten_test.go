package verify

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/pkg/archive"
)

// TestFlatten stacks layers as the Docker engine does: later entries replace earlier ones,
// whiteouts delete names with their subtrees, opaque directories hide the layers below (whether
// the marker comes before or after the layer's own entries), hard links join names into a group
// that a later rewrite of one name splits.
func TestFlatten(t *testing.T) {
	base := layerTar(t, te{name: "etc/"}, te{name: "etc/a", body: "a"}, te{name: "etc/sub/"}, te{name: "etc/sub/x", body: "x"},
		te{name: "bin/"}, te{name: "bin/sh", body: "shell", mode: 0o755}, te{name: "bin/dash=>bin/sh"}, te{name: "lib->usr/lib"})
	for _, tc := range []struct {
		name  string
		upper []te
		want  map[string]string
	}{
		{"base alone", nil, map[string]string{
			"etc": "dir 0755 0", "etc/a": "file 0644 0 1", "etc/sub": "dir 0755 0", "etc/sub/x": "file 0644 0 1",
			"bin": "dir 0755 0", "bin/sh": "file 0755 0 5 =bin/dash", "bin/dash": "file 0755 0 5 =bin/dash", "lib": "symlink 0644 0 ->usr/lib"}},
		{"whiteouts", []te{{name: "etc/.wh.sub"}, {name: ".wh.lib"}, {name: "etc/.wh.nothing"}}, map[string]string{
			"etc": "dir 0755 0", "etc/a": "file 0644 0 1",
			"bin": "dir 0755 0", "bin/sh": "file 0755 0 5 =bin/dash", "bin/dash": "file 0755 0 5 =bin/dash"}},
		{"opaque first", []te{{name: "etc/", mode: 0o700}, {name: "etc/.wh..wh..opq"}, {name: "etc/new", body: "n"}}, map[string]string{
			"etc": "dir 0700 0", "etc/new": "file 0644 0 1",
			"bin": "dir 0755 0", "bin/sh": "file 0755 0 5 =bin/dash", "bin/dash": "file 0755 0 5 =bin/dash", "lib": "symlink 0644 0 ->usr/lib"}},
		{"opaque last", []te{{name: "etc/sub/y", body: "yy"}, {name: "etc/.wh..wh..opq"}}, map[string]string{
			"etc": "dir 0755 0", "etc/sub": "dir 0755 0", "etc/sub/y": "file 0644 0 2",
			"bin": "dir 0755 0", "bin/sh": "file 0755 0 5 =bin/dash", "bin/dash": "file 0755 0 5 =bin/dash", "lib": "symlink 0644 0 ->usr/lib"}},
		{"replacements", []te{{name: "etc/sub", body: "now a file"}, {name: "lib/"}, {name: "lib/libc", body: "c"}, {name: "bin/dash", body: "other", mode: 0o755}}, map[string]string{
			"etc": "dir 0755 0", "etc/a": "file 0644 0 1", "etc/sub": "file 0644 0 10",
			"bin": "dir 0755 0", "bin/sh": "file 0755 0 5 =bin/sh", "bin/dash": "file 0755 0 5",
			"lib": "dir 0755 0", "lib/libc": "file 0644 0 1"}},
		{"implicit parents and a link within the layer", []te{{name: "srv/www/index", body: "i"}, {name: "srv/sh=>srv/www/index"}, {name: "etc/a", body: "a", uid: 7}}, map[string]string{
			"etc": "dir 0755 0", "etc/a": "file 0644 7 1", "etc/sub": "dir 0755 0", "etc/sub/x": "file 0644 0 1",
			"bin": "dir 0755 0", "bin/sh": "file 0755 0 5 =bin/dash", "bin/dash": "file 0755 0 5 =bin/dash", "lib": "symlink 0644 0 ->usr/lib",
			"srv": "dir 0755 0", "srv/sh": "file 0644 0 1 =srv/sh", "srv/www": "dir 0755 0", "srv/www/index": "file 0644 0 1 =srv/sh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layers := [][]byte{base}
			if tc.upper != nil {
				layers = append(layers, layerTar(t, tc.upper...))
			}
			tr := flattenTars(t, layers...)
			got := dump(tr)
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("flattened tree (-want +got):\n%s", d)
			}
			if tr.entries != int64(len(got)) || count(tr.root)-1 != tr.entries {
				t.Errorf("entries counted %d, the tree holds %d", tr.entries, count(tr.root)-1)
			}
		})
	}
}

// TestFlattenRefuses names that climb out of the root and links to nothing.
func TestFlattenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []te
		want    error
	}{
		{"dot-dot", []te{{name: "a/../../etc/passwd", body: "x"}}, archive.ErrUnsafePath},
		{"hard link out", []te{{name: "a=>../etc/passwd"}}, archive.ErrUnsafePath},
		{"hard link to nothing", []te{{name: "a=>b"}}, nil},
		{"whiteout in a missing directory (an engine makes it)", []te{{name: "gone/.wh.x"}}, archive.ErrEngineDiffers},
		{"opaque marker at the root (an engine ignores it)", []te{{name: ".wh..wh..opq"}}, archive.ErrEngineDiffers},
		{"whiteout and entry of one name", []te{{name: ".wh.etc"}, {name: "etc/"}}, archive.ErrEngineDiffers},
		{"hard link before its target", []te{{name: "a=>b"}, {name: "b", body: "b"}}, archive.ErrEngineDiffers},
		{"hard link to a directory", []te{{name: "d/"}, {name: "a=>d"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlattener(nil)
			err := f.apply(context.Background(), 0, bytes.NewReader(layerTar(t, tc.entries...)))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("got %v, want an error (%v)", err, tc.want)
			}
		})
	}
}

// TestFlattenTruncated: a layer cut short is an error, not a smaller tree.
func TestFlattenTruncated(t *testing.T) {
	b := layerTar(t, te{name: "big", body: string(make([]byte, 10000))})
	f := newFlattener(nil)
	if err := f.apply(context.Background(), 0, bytes.NewReader(b[:5000])); err == nil {
		t.Error("a truncated layer applied without error")
	}
}
