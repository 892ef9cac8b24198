package source_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

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

// An agent that streams valid, distinct entries without end is stopped at MaxTreeEntries.
func TestRemoteTreeEntryBound(t *testing.T) {
	defer func(n int) { source.MaxTreeEntries = n }(source.MaxTreeEntries)
	source.MaxTreeEntries = 1000
	src := hostileSource(t, func(ctx context.Context, req proto.Request, w io.Writer) error {
		for i := 0; ; i++ {
			if _, err := w.Write(entryBytes(&fsmeta.Entry{Type: fsmeta.TypeRegular, Path: fmt.Sprintf("f%d", i)})); err != nil {
				return err
			}
		}
	})
	n := 0
	_, err := src.Tree(context.Background(), wire.TreeArgs{}, func(*fsmeta.Entry) error { n++; return nil })
	if !errors.Is(err, proto.ErrTooLarge) || n != 1000 {
		t.Fatalf("endless tree: %d entries taken, err %v", n, err)
	}
}

// An agent that authenticates, then never answers, ends the call with a clear error after
// proto.ReadIdleTimeout instead of holding the conversion forever.
func TestRemoteSilentAgent(t *testing.T) {
	defer func(d time.Duration) { proto.ReadIdleTimeout = d }(proto.ReadIdleTimeout)
	proto.ReadIdleTimeout = 300 * time.Millisecond
	src := hostileSource(t, func(ctx context.Context, req proto.Request, w io.Writer) error {
		<-ctx.Done()
		return ctx.Err()
	})
	done := make(chan error, 1)
	go func() {
		_, err := src.Tree(context.Background(), wire.TreeArgs{}, func(*fsmeta.Entry) error { return nil })
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "sent nothing") {
			t.Fatalf("silent agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a silent agent held the call")
	}
}
