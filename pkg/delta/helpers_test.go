package delta

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// randBytes returns n pseudo-random bytes from seed.
func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(key).Read(b)
	return b
}

// edit returns data with edits regions inserted, deleted or overwritten, each up to maxLen bytes.
func edit(seed uint64, data []byte, edits, maxLen int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	out := bytes.Clone(data)
	for i := range edits {
		n := 1 + r.IntN(maxLen)
		at := 0
		if len(out) > 0 {
			at = r.IntN(len(out))
		}
		switch i % 3 {
		case 0: // insert
			out = append(out[:at], append(randBytes(uint64(i)+seed*1000, n), out[at:]...)...)
		case 1: // delete
			out = append(out[:at], out[min(at+n, len(out)):]...)
		case 2: // overwrite
			copy(out[at:], randBytes(uint64(i)+seed*1000, n))
		}
	}
	return out
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rdiff runs Debian's rdiff with args.
func rdiff(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("rdiff", args...).CombinedOutput(); err != nil {
		t.Fatalf("rdiff %q: %v\n%s", args, err, out)
	}
}

func requireRdiff(t testing.TB) {
	t.Helper()
	testenv.RequireCommands(t, "rdiff")
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sigOf returns our signature of b, parsed.
func sigOf(t testing.TB, b []byte, blockLen uint32) (*Sig, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := Signature(context.Background(), bytes.NewReader(b), &buf, blockLen); err != nil {
		t.Fatal(err)
	}
	raw := bytes.Clone(buf.Bytes())
	sig, err := ParseSignature(&buf, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return sig, raw
}
