package proto

import (
	"context"
	"io"
	"testing"
)

// transports are the two ways a client and a server talk.
var transports = []struct {
	name  string
	plain bool
}{{"tls", false}, {"plaintext", true}}

// BenchmarkStream measures the throughput of one 256 MiB response over loopback TCP, from the
// handler's writes to the client's reads, over TLS and in plaintext.
func BenchmarkStream(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) { benchStream(b, tr.plain) })
	}
}

func benchStream(b *testing.B, plain bool) {
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
	addr := startTCP(b, NewServer(h, ServerOptions{Token: testToken, Plaintext: plain}))
	c, err := Dial(context.Background(), addr, testToken, ClientOptions{Plaintext: plain})
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

// BenchmarkHandshake measures connecting and authenticating over loopback TCP: TLS 1.3 with
// the channel-bound proofs, and the plaintext proofs alone.
func BenchmarkHandshake(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			addr := startTCP(b, NewServer(nil, ServerOptions{Token: testToken, Plaintext: tr.plain, MaxConns: 4}))
			b.ResetTimer()
			for range b.N {
				c, err := Dial(context.Background(), addr, testToken, ClientOptions{Plaintext: tr.plain})
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
