package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/layer"
)

// describe renders a layer's entries as "name type [-> link]" lines.
func describe(hs []*tar.Header) []string {
	var out []string
	for _, h := range hs {
		s := fmt.Sprintf("%s %c", h.Name, h.Typeflag)
		if h.Linkname != "" {
			s += " -> " + h.Linkname
		}
		out = append(out, s)
	}
	return out
}

func TestOrder(t *testing.T) {
	old := difftest.Tree{
		"gone": F{Content: "g"}, "a/x": F{Content: "x"}, "a/y": F{Content: "y"}, "a/z": F{Content: "z"},
		"b/c/d": F{Content: "d"}, "b/c/e": F{Content: "e"}, "r/p": F{Content: "p"}, "r/q": F{Content: "q"},
		"h/one": F{Content: "1"}, "h/two": HL{Target: "h/one"}, "-": F{Content: "dash"},
	}
	new := difftest.Tree{
		"a/y": F{Content: "y"}, "a/z": F{Content: "zz"}, "a/-new": F{Content: "n"},
		"b/c/e": F{Content: "e"}, "r/s/t": F{Content: "t"}, "new": L{Target: "a/y"},
		"h/one": F{Content: "1+"}, "h/two": HL{Target: "h/one"}, "h/three": HL{Target: "h/one"}, "-": F{Content: "dash"},
	}
	oldDir, newDir := buildPair(t, old, new)
	file, _, st := buildLayer(t, oldDir, newDir, diff.Options{Strategy: diff.Checksum}, layer.Options{})
	want := []string{
		".wh.gone 0",
		"a/ 5", "a/.wh.x 0", "a/-new 0", "a/z 0",
		"b/ 5", "b/c/ 5", "b/c/.wh.d 0",
		"h/ 5", "h/one 0", "h/three 1 -> h/one", "h/two 1 -> h/one",
		"new 2 -> a/y",
		"r/ 5", "r/.wh..wh..opq 0", "r/s/ 5", "r/s/t 0",
	}
	if got := describe(tarEntries(t, file)); !slices.Equal(got, want) {
		t.Errorf("layer entries:\n got %q\nwant %q", got, want)
	}
	if st.Whiteouts != 3 || st.Opaques != 1 || st.Hardlinks != 2 || st.Files != 4 || st.Entries != int64(len(want)) {
		t.Errorf("stats %+v", st)
	}
	data := readFile(t, file)
	if sum := sha256.Sum256(data); st.DiffID != "sha256:"+hex.EncodeToString(sum[:]) || st.Bytes != int64(len(data)) {
		t.Errorf("DiffID %s / Bytes %d do not describe the %d bytes written", st.DiffID, st.Bytes, len(data))
	}
	for _, h := range tarEntries(t, file) {
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s has owner names %q:%q", h.Name, h.Uname, h.Gname)
		}
	}
}

func TestReproducible(t *testing.T) {
	old := difftest.Tree{"a/b": F{Content: "b"}, "gone/x": F{Content: "x"}, "d/1": F{Content: "1"}, "d/2": F{Content: "2"}}
	new := difftest.Tree{"a/b": F{Content: "bb", Meta: M{Xattrs: map[string]string{"user.z": "1", "user.a": "2", "user.m": "3"}}},
		"a/c": F{Content: "c"}, "d/3": F{Content: "3"}, "l1": F{Content: "l"}, "l2": HL{Target: "l1"}}
	oldDir, newDir := buildPair(t, old, new)
	var ids []string
	var blobs [][]byte
	for range 3 {
		file, _, st := buildLayer(t, oldDir, newDir, diff.Options{Strategy: diff.Checksum}, layer.Options{})
		ids = append(ids, st.DiffID)
		blobs = append(blobs, readFile(t, file))
	}
	if ids[0] != ids[1] || ids[1] != ids[2] || !bytes.Equal(blobs[0], blobs[2]) {
		t.Errorf("the same layer built three times has digests %q", ids)
	}
	// The same trees copied elsewhere (new inodes, new device) give the same layer too.
	oldDir2, newDir2 := buildPair(t, old, new)
	if _, _, st := buildLayer(t, oldDir2, newDir2, diff.Options{Strategy: diff.Checksum}, layer.Options{}); st.DiffID != ids[0] {
		t.Errorf("rebuilt trees give %s, want %s", st.DiffID, ids[0])
	}
}

// TestChangedContent changes the new tree between the diff and the layer.
func TestChangedContent(t *testing.T) {
	old := difftest.Tree{"keep": F{Content: "k"}}
	new := difftest.Tree{"keep": F{Content: "k"}, "vanish": F{Content: "soon gone"}, "grow": F{Content: "small"},
		"link1": F{Content: "linked"}, "link2": HL{Target: "link1"}, "z": F{Content: "last"}}
	oldDir, newDir := buildPair(t, old, new)
	ctx := context.Background()
	res, err := diff.Trees(ctx, openDir(t, oldDir), openDir(t, newDir), diff.Options{Strategy: diff.Checksum})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"vanish", "link1"} {
		if err := os.Remove(filepath.Join(newDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(newDir, "grow"), []byte("much larger now"), 0o644); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	var seen []string
	st, err := layer.Write(ctx, &buf, res, openDir(t, newDir), layer.Options{OnError: func(p string, err error) error {
		seen = append(seen, p)
		return nil
	}})
	if err != nil {
		t.Fatalf("layer.Write: %v", err)
	}
	if want := []string{"grow", "link1", "link2", "vanish"}; !slices.Equal(seen, want) {
		t.Errorf("problems %q, want %q (%+v)", seen, want, st.Problems)
	}
	var names []string
	for _, h := range tarEntriesOf(t, buf.Bytes()) {
		names = append(names, fmt.Sprintf("%s:%d", h.Name, h.Size))
	}
	if want := []string{"grow:15", "z:4"}; !slices.Equal(names, want) {
		t.Errorf("layer holds %q, want %q", names, want)
	}

	_, err = layer.Write(ctx, &bytes.Buffer{}, res, openDir(t, newDir), layer.Options{Strict: true})
	if !errors.Is(err, layer.ErrChanged) || !strings.Contains(err.Error(), `"grow"`) {
		t.Errorf("strict: got %v, want ErrChanged naming \"grow\"", err)
	}
}

func tarEntriesOf(t *testing.T, data []byte) []*tar.Header {
	t.Helper()
	f := filepath.Join(t.TempDir(), "l.tar")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return tarEntries(t, f)
}

// TestHeadersDecode reads the layer's entries back with fsmeta.FromTarHeader: each is the new
// tree's entry, xattrs included (SELinux labels dropped).
func TestHeadersDecode(t *testing.T) {
	old := difftest.Tree{"keep": F{Content: "k"}}
	new := difftest.Tree{"keep": F{Content: "k"}, "dir/file": F{Content: "f", Meta: M{Mode: 0o4750,
		Owner: &difftest.Owner{UID: 7, GID: 8}, Xattrs: map[string]string{"user.x": "1", "security.selinux": "label"}}},
		"dir/link": L{Target: "../keep"}, "dir/fifo": difftest.FIFO{}, "dir/dev": difftest.Device{Major: 4, Minor: 64},
		"dir/hard": HL{Target: "dir/file"}}
	oldDir, newDir := buildPair(t, old, new)
	file, res, _ := buildLayer(t, oldDir, newDir, diff.Options{}, layer.Options{})
	want := map[string]*fsmeta.Entry{}
	for _, c := range res.Changes {
		want[c.Path] = c.New
	}
	for _, h := range tarEntries(t, file) {
		e, err := fsmeta.FromTarHeader(h)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		w := want[e.Path]
		if w == nil {
			t.Errorf("unexpected entry %q", e.Path)
			continue
		}
		if h.Typeflag == tar.TypeLink {
			if e.Target != "dir/file" {
				t.Errorf("%s links to %q", e.Path, e.Target)
			}
			continue
		}
		if _, ok := e.Xattrs["security.selinux"]; ok {
			t.Errorf("%s keeps its SELinux label", e.Path)
		}
		got := e
		got.Dev, got.Ino, got.Nlink, got.Digest = w.Dev, w.Ino, w.Nlink, w.Digest
		if w.Xattrs != nil && len(w.Xattrs) != len(got.Xattrs) {
			t.Errorf("%s: xattrs %v, want %v", e.Path, got.Xattrs, w.Xattrs)
		}
		got.Xattrs = w.Xattrs
		if !reflect.DeepEqual(&got, w) {
			t.Errorf("decoded %+v\nwant    %+v", got, *w)
		}
	}
}

// TestWhiteoutNames keeps names that appliers would take for whiteouts out of the layer.
func TestWhiteoutNames(t *testing.T) {
	old := difftest.Tree{"victim": F{Content: "v"}, "dir/a": F{Content: "a"}}
	new := difftest.Tree{"victim": F{Content: "v"}, "dir/a": F{Content: "a"}, ".wh.victim": F{Content: ""},
		"dir/.wh..wh..opq": F{Content: ""}, ".wh.d/x": F{Content: "x"}, "ok": F{Content: "ok"}}
	oldDir, newDir := buildPair(t, old, new)
	var seen []string
	file, _, st := buildLayer(t, oldDir, newDir, diff.Options{}, layer.Options{OnError: func(p string, err error) error {
		if errors.Is(err, layer.ErrWhiteoutName) {
			seen = append(seen, p)
		}
		return nil
	}})
	if got, want := describe(tarEntries(t, file)), []string{"ok 0"}; !slices.Equal(got, want) {
		t.Errorf("layer entries %q, want %q", got, want)
	}
	if want := []string{".wh.d", ".wh.d/x", ".wh.victim", "dir/.wh..wh..opq"}; !slices.Equal(seen, want) || len(st.Problems) != 4 {
		t.Errorf("refused %q, want %q", seen, want)
	}
}
