package main

import (
	"context"
	"io"

	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// phaseExport is the one phase of export: the manifest gives the total, then the contents move.
const phaseExport = "export"

type exportResult struct {
	wire.TreeResult
	wire int64
}

// exportTo streams src's filesystem into o.output, showing bytes of the manifest's total.
func exportTo(ctx context.Context, src source.Source, o exportOptions, stdout, stderr io.Writer) (int64, exportResult, error) {
	d := o.display(stderr)
	defer d.Close()
	d.Phase(phaseExport)
	n, res, err := exportStream(ctx, src, o, stdout, func(done, total int64) { d.Bytes(phaseExport, done, total) })
	d.Done(phaseExport, err)
	return n, res, err
}

func exportStream(ctx context.Context, src source.Source, o exportOptions, stdout io.Writer, bytes func(done, total int64)) (int64, exportResult, error) {
	total := convert.ManifestTotal(ctx, src, o.excludes)
	ts, err := src.Filesystem(ctx, wire.TreeArgs{Excludes: o.excludes})
	if err != nil {
		return 0, exportResult{}, err
	}
	defer ts.Close()
	var done int64
	n, err := writeAtomic(o.output, stdout, func(w io.Writer) (int64, error) {
		return io.Copy(w, &countReader{r: ts, fn: func(k int) { done += int64(k); bytes(done, total) }})
	})
	return n, exportResult{TreeResult: ts.Result(), wire: ts.WireBytes()}, err
}

// countReader calls fn with the bytes of every read.
type countReader struct {
	r  io.Reader
	fn func(int)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.fn(n)
	}
	return n, err
}
