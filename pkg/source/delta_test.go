package source_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/pkg/agent"
	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/vmread"
	"github.com/vm2image/vm2image/pkg/wire"
)

// serveAgent serves an agent of root on a loopback port and returns a source connected to it.
func serveAgent(t *testing.T, root, compression string) source.Source {
	t.Helper()
	a, err := vmread.New(vmread.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	token := []byte("delta-test-token")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proto.NewServer(agent.Handler(a), proto.ServerOptions{Token: token}).Serve(ctx, ln) }()
	src, err := source.Open(ctx, ln.Addr().String(), source.Options{Token: token, Compression: compression})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		src.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serving: %v", err)
		}
	})
	return src
}

func fetchDelta(src source.Source, path string, sig []byte) ([]byte, error) {
	rc, err := src.Delta(context.Background(), path, sig)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestDelta fetches deltas of modified files from an in-process source and from an agent over
// TCP, against signatures of the converter's versions, and patches them back; paths outside the
// root, symlinks and unusable signatures are refused, and the agent keeps serving.
func TestDelta(t *testing.T) {
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	mine := make([]byte, 3<<20) // the converter's version of the file
	for i := range mine {
		mine[i] = byte(rng.UintN(256))
	}
	vmFile := append(bytes.Clone(mine[:1<<20]), []byte("a change on the VM")...)
	vmFile = append(vmFile, mine[1<<20+5000:]...)
	must(t, os.MkdirAll(filepath.Join(root, "srv/data"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "srv/data/big.bin"), vmFile, 0o644))
	must(t, os.Symlink("big.bin", filepath.Join(root, "srv/data/link")))
	must(t, os.Symlink("/etc", filepath.Join(root, "srv/escape")))
	var sig bytes.Buffer
	must(t, delta.Signature(context.Background(), bytes.NewReader(mine), &sig, 0))
	rk := append([]byte{0x72, 0x73, 0x01, 0x47}, sig.Bytes()[4:]...) // rdiff's default magic

	local, err := source.OpenDir(root, "dir:"+root)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	sources := map[string]source.Source{"dir": local}
	for _, comp := range []string{"zstd", "gzip", "none"} {
		sources["agent/"+comp] = serveAgent(t, root, comp)
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			remote := strings.HasPrefix(name, "agent")
			for range 2 { // the second round reuses pooled connections
				d, err := fetchDelta(src, "/srv/data/big.bin", sig.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				st, err := delta.PatchStats(context.Background(), bytes.NewReader(mine), bytes.NewReader(d), &out, int64(len(vmFile)))
				if err != nil || !bytes.Equal(out.Bytes(), vmFile) {
					t.Fatalf("patched file differs from the VM's (%d bytes, want %d): %v", out.Len(), len(vmFile), err)
				}
				if st.LiteralBytes > 3*int64(delta.BlockLen(int64(len(mine)))) {
					t.Errorf("delta of a small change: %+v", st)
				}
			}
			checkRefused(t, src, remote, sig.Bytes(), rk)
		})
	}
}

func checkRefused(t *testing.T, src source.Source, remote bool, sig, rk []byte) {
	outside := fswalk.ErrOutsideRoot
	if remote {
		outside = proto.ErrOutsideRoot
	}
	for _, p := range []string{"../../etc/passwd", "/../../etc/passwd", "srv/escape/passwd"} {
		if _, err := fetchDelta(src, p, sig); !errors.Is(err, outside) {
			t.Errorf("delta of %q: got %v, want an outside-the-root error", p, err)
		}
	}
	if _, err := fetchDelta(src, "srv/data/link", sig); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("delta of a symlink: %v", err)
	}
	if _, err := fetchDelta(src, "srv/data/missing", sig); err == nil {
		t.Error("delta of a missing file: no error")
	}
	_, err := fetchDelta(src, "srv/data/big.bin", rk)
	if !strings.Contains(fmtErr(err), "0x72730147") || (!remote && !errors.Is(err, delta.ErrUnsupportedSignature)) ||
		(remote && !errors.Is(err, proto.ErrBadRequest)) {
		t.Errorf("delta against a RabinKarp signature: %v", err)
	}
	if _, err := fetchDelta(src, "srv/data/big.bin", make([]byte, wire.MaxDeltaSignature+1)); err == nil {
		t.Error("oversized signature: no error")
	}
	// The largest signature and a long path that JSON escapes six-fold still fit in a request.
	biggest := append(sig[:12:12], make([]byte, (wire.MaxDeltaSignature-12)/36*36)...)
	notFound := fs.ErrNotExist
	if remote {
		notFound = proto.ErrNotFound
	}
	if _, err := fetchDelta(src, strings.Repeat(strings.Repeat("<", 200)+"/", 20), biggest); !errors.Is(err, notFound) {
		t.Errorf("largest request: got %v, want not found", err)
	}
	// A stream closed before its end leaves the source usable.
	rc, err := src.Delta(context.Background(), "srv/data/big.bin", sig)
	if err != nil {
		t.Fatal(err)
	}
	rc.Read(make([]byte, 10))
	rc.Close()
	if _, err := fetchDelta(src, "srv/data/big.bin", sig); err != nil {
		t.Errorf("delta after bad requests: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
