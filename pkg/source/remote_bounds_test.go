package source_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

const hostileToken = "hostile-agent-token-0123456789abcdefXYZ"

// hostileSource connects a remote source to an agent, holding the token, that answers every
// operation with h.
func hostileSource(t *testing.T, h proto.HandlerFunc) source.Source {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := proto.NewServer(h, proto.ServerOptions{Token: []byte(hostileToken)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	src, err := source.Open(context.Background(), ln.Addr().String(),
		source.Options{Token: []byte(hostileToken), Fingerprint: srv.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// entryBytes is one length-prefixed encoded entry.
func entryBytes(e *fsmeta.Entry) []byte {
	b := fsmeta.AppendEntry(nil, e)
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// TestRemoteBoundsHostileAgent: an agent holding the token sends oversized entries, a huge
// trailer, endless hash answers: each is a clear error, never unbounded memory.
func TestRemoteBoundsHostileAgent(t *testing.T) {
	ctx := context.Background()
	tree := func(body []byte, trailer []byte) proto.HandlerFunc {
		return func(ctx context.Context, req proto.Request, w io.Writer) error {
			proto.SetTrailer(ctx, trailer)
			_, err := w.Write(body)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		h    proto.HandlerFunc
		want string
	}{
		{"entry length over the bound", tree(binary.AppendUvarint(nil, 1<<40), nil), "entry length"},
		{"link target over PATH_MAX", tree(entryBytes(&fsmeta.Entry{Type: fsmeta.TypeSymlink, Path: "x", Target: strings.Repeat("a", 5000)}), nil), "oversized"},
		{"xattr value over 64 KiB", tree(entryBytes(&fsmeta.Entry{Type: fsmeta.TypeRegular, Path: "x",
			Xattrs: map[string][]byte{"user.x": bytes.Repeat([]byte("v"), 70<<10)}}), nil), "oversized"},
		{"trailer over 256 KiB", tree(nil, append([]byte(`{"problems":[{"path":"`), bytes.Repeat([]byte("p"), 600<<10)...)), "answer too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := hostileSource(t, tc.h)
			_, err := src.Tree(ctx, wire.TreeArgs{}, func(*fsmeta.Entry) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	src := hostileSource(t, func(ctx context.Context, req proto.Request, w io.Writer) error {
		if _, err := io.WriteString(w, "["); err != nil {
			return err
		}
		for {
			if _, err := io.WriteString(w, `{"digest":"sha256:00","size":1},`); err != nil {
				return err
			}
		}
	})
	_, err := src.Hash(ctx, []string{"etc/passwd"})
	if !errors.Is(err, proto.ErrTooLarge) {
		t.Errorf("endless hash answer: %v", err)
	}
}
