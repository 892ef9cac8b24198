package proto

import (
	"context"
	"io"
	"testing"
)

// BenchmarkStream measures the throughput of one 256 MiB response over loopback TCP, from the
// handler's writes to the client's reads.
func BenchmarkStream(b *testing.B) {
	const size = 256 << 20
	chunk := make([]byte, 256<<10)
	patternAt(0, chunk)
	h := HandlerFunc(func(ctx context.Context, req Request, w io.Writer) error {
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	})
	addr := startTCP(b, NewServer(h, ServerOptions{Token: testToken}))
	c, err := Dial(context.Background(), addr, testToken, ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 128<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		rc, err := c.Call(context.Background(), "stream", nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf)
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v", n, err)
		}
		rc.Close()
	}
}
