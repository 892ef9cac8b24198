package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
)

// TestTakeUpperTreeEqualsLayer: a real chroot build; the base with its packages layer applied
// from the layer's own bytes, and the same with the regular files moved from the build's
// overlay upper directory (TakeUpper, archive.Donor, as the converter's cold path does), are
// the same tree: every entry's type, mode, owner, size, digest, link target, xattrs and mtime.
// Cached says no before the build and yes after.
func TestTakeUpperTreeEqualsLayer(t *testing.T) {
	f := newFixture(t)
	opts := testOptions(t, Chroot)
	in := f.input()
	if Cached(in, opts) {
		t.Fatal("Cached before any build of a fresh cache")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, cleanup, err := Build(ctx, in, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if !Cached(in, opts) {
		t.Error("not Cached after the build")
	}
	apply := func(name string, extra ...archive.Option) string {
		dir := filepath.Join(t.TempDir(), name)
		must(t, os.Mkdir(dir, 0o755))
		run(t, "cp", "-a", f.baseRoot+"/.", dir)
		l, err := os.Open(res.LayerPath)
		must(t, err)
		defer l.Close()
		must(t, archive.Apply(ctx, dir, l, append([]archive.Option{archive.Layer()}, extra...)...))
		return dir
	}
	stream := apply("stream")
	upper, err := res.TakeUpper()
	if err != nil || upper == "" {
		t.Fatalf("TakeUpper: %q, %v", upper, err)
	}
	taken := 0
	donor := apply("donor", archive.Donor(upper, &taken))
	if taken == 0 {
		t.Fatal("no file was moved from the upper directory")
	}
	t.Logf("%d files moved from the build", taken)
	if d := cmp.Diff(treeOf(t, stream), treeOf(t, donor)); d != "" {
		t.Errorf("the tree from the upper directory differs from the layer's (-layer +upper):\n%s", d)
	}
}

// treeOf records every entry of dir with its contents' digest and metadata.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fswalk.Walk(context.Background(), dir, fswalk.Options{Digest: true, TreatAsMounts: true}, func(e *fsmeta.Entry) error {
		if e.Path == "." {
			return nil
		}
		var xs []string
		for k, v := range e.Xattrs {
			xs = append(xs, k+"="+string(v))
		}
		sort.Strings(xs)
		mt := e.MTime
		if e.Type == fsmeta.TypeDir {
			mt = 0 // a directory's mtime moves as entries are made in it (both ways alike)
		}
		out[e.Path] = fmt.Sprintf("%s %o %d:%d %d %s %q %q %d", e.Type, e.Mode, e.UID, e.GID, e.Size, e.Digest, e.Target, xs, mt)
		return nil
	})
	must(t, err)
	return out
}
