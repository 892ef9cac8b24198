package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// countingContent counts Files requests.
type countingContent struct {
	src   source.Source
	calls int
}

func (c *countingContent) Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error) {
	c.calls++
	return c.src.Files(ctx, args)
}

// TestChunkedRequests checks that a path list too long for one request is asked for in several,
// with the same layer as a result.
func TestChunkedRequests(t *testing.T) {
	base := t.TempDir()
	oldDir, newDir := filepath.Join(base, "old"), filepath.Join(base, "new")
	os.Mkdir(oldDir, 0o755)
	os.Mkdir(newDir, 0o755)
	tree := difftest.Tree{}
	for i := range 50 {
		tree[fmt.Sprintf("dir/file-%02d-\x01", i)] = difftest.File{Content: fmt.Sprint(i)}
	}
	difftest.Build(t, newDir, tree)
	ctx := context.Background()
	open := func(d string) source.Source {
		s, err := source.OpenDir(d, d)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	res, err := diff.Trees(ctx, open(oldDir), open(newDir), diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var layers [][]byte
	var calls []int
	for _, limit := range []int{1 << 20, 100} {
		maxRequestBytes = limit
		c := &countingContent{src: open(newDir)}
		var buf bytes.Buffer
		if _, err := Write(ctx, &buf, res, c, Options{}); err != nil {
			t.Fatal(err)
		}
		layers, calls = append(layers, buf.Bytes()), append(calls, c.calls)
	}
	maxRequestBytes = 768 << 10
	if calls[0] != 1 || calls[1] < 5 || !bytes.Equal(layers[0], layers[1]) {
		t.Errorf("requests made: %v; layers equal: %v", calls, bytes.Equal(layers[0], layers[1]))
	}
}
