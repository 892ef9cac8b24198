package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// te is one entry of a test layer: "dir/", "file", "link->target" (symlink), "name=>target" (hard
// link), ".wh.name", ".wh..wh..opq" by the look of name unless typ is set.
type te struct {
	name   string
	body   string
	mode   int64
	uid    int
	typ    byte
	xattrs map[string]string
	major  int64
}

func layerTar(t testing.TB, entries ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := tarHeader(e)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, e.body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tarHeader(e te) *tar.Header {
	h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, Typeflag: e.typ, Format: tar.FormatPAX}
	if h.Mode == 0 {
		h.Mode = 0o644
	}
	if name, target, ok := strings.Cut(e.name, "->"); ok {
		h.Name, h.Linkname, h.Typeflag = name, target, tar.TypeSymlink
	}
	if name, target, ok := strings.Cut(e.name, "=>"); ok {
		h.Name, h.Linkname, h.Typeflag = name, target, tar.TypeLink
	}
	switch {
	case h.Typeflag != 0:
	case strings.HasSuffix(h.Name, "/"):
		h.Typeflag = tar.TypeDir
		if e.mode == 0 {
			h.Mode = 0o755
		}
	default:
		h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
	}
	if h.Typeflag == tar.TypeChar {
		h.Devmajor, h.Devminor = e.major, 3
	}
	for k, v := range e.xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[archive.PAXXattrPrefix+k] = v
	}
	return h
}

// flattenTars applies layers in order to a new tree.
func flattenTars(t testing.TB, layers ...[]byte) *tree {
	t.Helper()
	f := newFlattener(nil)
	for k, l := range layers {
		if err := f.apply(context.Background(), int32(k), bytes.NewReader(l)); err != nil {
			t.Fatal(err)
		}
	}
	return f.t
}

// dump describes every node of t by path: type, mode, owner, and size or target; hard-link
// groups as "=GROUPLEADER" where the leader is the group's first member in walk order.
func dump(t *tree) map[string]string {
	out := map[string]string{}
	groups := map[*linkGroup]string{}
	it := newImageIter(t, &matcher{})
	for it.ok {
		n := it.n
		s := fmt.Sprintf("%s %04o %d", n.typ, n.mode, n.uid)
		switch n.typ {
		case fsmeta.TypeRegular:
			s += fmt.Sprintf(" %d", n.size)
		case fsmeta.TypeSymlink:
			s += " ->" + n.extra.target
		}
		if n.extra != nil && n.extra.group != nil {
			if _, ok := groups[n.extra.group]; !ok {
				groups[n.extra.group] = it.path
			}
			s += " =" + groups[n.extra.group]
		}
		out[it.path] = s
		it.next(true)
	}
	return out
}

// testImage stacks layers into an image whose excludes label holds excl (no label when nil).
func testImage(t testing.TB, excl []string, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, b := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	if excl != nil {
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		quoted := make([]string, len(excl))
		for i, e := range excl {
			quoted[i] = fmt.Sprintf("%q", e)
		}
		cfg.Config.Labels = map[string]string{"org.vm2image.excludes": "[" + strings.Join(quoted, ",") + "]"}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return img
}
