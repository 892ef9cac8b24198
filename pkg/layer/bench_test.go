package layer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/layer"
)

// benchLayer is built once per test binary: an old tree of 2,000 files and a new one with
// 4,000 files of 32 KiB added, 500 modified, 250 deleted and 100 hard links: about 135 MB
// of layer.
var benchLayer struct {
	once           sync.Once
	base, old, new string
	res            *diff.Result
	err            error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchLayer.base != "" {
		os.RemoveAll(benchLayer.base)
	}
	os.Exit(code)
}

func benchLayerPair(b *testing.B) (string, *diff.Result) {
	benchLayer.once.Do(func() {
		benchLayer.base, benchLayer.err = os.MkdirTemp("", "vm2image-bench-layer-")
		if benchLayer.err != nil {
			return
		}
		old, new := difftest.Tree{}, difftest.Tree{}
		body := strings.Repeat("0123456789abcdef", 2048) // 32 KiB
		for i := range 2000 {
			p := fmt.Sprintf("d%02d/f%04d", i%20, i)
			old[p] = F{Content: body[:i%4096]}
			switch {
			case i%4 == 0:
				new[p] = F{Content: body[:i%4096] + "changed"}
			case i%4 == 1 && i%8 == 1:
				// deleted
			default:
				new[p] = old[p]
			}
		}
		for i := range 4000 {
			new[fmt.Sprintf("n%02d/g%04d", i%40, i)] = F{Content: body}
		}
		for i := range 100 {
			new[fmt.Sprintf("n%02d/link%04d", i%40, i)] = HL{Target: fmt.Sprintf("n%02d/g%04d", i%40, i)}
		}
		benchLayer.old, benchLayer.new = filepath.Join(benchLayer.base, "old"), filepath.Join(benchLayer.base, "new")
		os.Mkdir(benchLayer.old, 0o755)
		os.Mkdir(benchLayer.new, 0o755)
		difftest.Build(b, benchLayer.old, old)
		difftest.Build(b, benchLayer.new, new)
		benchLayer.res, benchLayer.err = diff.Trees(context.Background(), openDir(b, benchLayer.old), openDir(b, benchLayer.new),
			diff.Options{Strategy: diff.Checksum})
	})
	if benchLayer.err != nil {
		b.Fatal(benchLayer.err)
	}
	return benchLayer.new, benchLayer.res
}

// BenchmarkWrite writes the layer of the benchmark pair to io.Discard, contents read from the
// new tree through a dir: source, and reports the layer's size per operation (SetBytes).
func BenchmarkWrite(b *testing.B) {
	newDir, res := benchLayerPair(b)
	src := openDir(b, newDir)
	var st layer.LayerStats
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var err error
		if st, err = layer.Write(context.Background(), io.Discard, res, src, layer.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(st.Bytes)
	b.ReportMetric(float64(st.Entries), "entries")
	b.ReportMetric(float64(len(res.Changes)), "changes")
}
