package verify

import (
	"bytes"
	"context"
	"testing"

	"github.com/vm2image/vm2image/pkg/diff"
)

// FuzzFlatten feeds arbitrary bytes as two layers: never a panic, and a tree that applied holds
// what it counted, visited in the walk's order.
func FuzzFlatten(f *testing.F) {
	f.Add(layerTar(f, te{name: "a/"}, te{name: "a/b", body: "x"}, te{name: "a/c=>a/b"}, te{name: "l->a"}),
		layerTar(f, te{name: "a/.wh..wh..opq"}, te{name: ".wh.l"}, te{name: "a/b/c", body: "y"}))
	f.Add(layerTar(f, te{name: "./x/y/z", body: "1"}), layerTar(f, te{name: "x/.wh.y"}, te{name: "x=>x/y"}))
	f.Add([]byte("not a tar"), []byte{})
	f.Fuzz(func(t *testing.T, l0, l1 []byte) {
		fl := newFlattener(nil)
		for k, l := range [][]byte{l0, l1} {
			if err := fl.apply(context.Background(), int32(k), bytes.NewReader(l)); err != nil {
				return
			}
		}
		if n := count(fl.t.root) - 1; n != fl.t.entries {
			t.Fatalf("counted %d entries, the tree holds %d", fl.t.entries, n)
		}
		prev := ""
		for it := newImageIter(fl.t, &matcher{}); it.ok; it.next(true) {
			if prev != "" && diff.ComparePaths(prev, it.path) >= 0 {
				t.Fatalf("%q visited after %q", it.path, prev)
			}
			prev = it.path
		}
	})
}
