package delta

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

type pair struct {
	name     string
	old, new []byte
}

// pairs builds the oracle table: random data with edits, edge cases and real files with edits.
func pairs(t *testing.T) []pair {
	base := randBytes(1, 1<<20)
	bash, err := os.ReadFile("/usr/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	gpl, err := os.ReadFile("/usr/share/common-licenses/GPL-3")
	if err != nil {
		t.Fatal(err)
	}
	big := randBytes(2, 50<<20)
	return []pair{
		{"random edited", base, edit(3, base, 40, 5000)},
		{"random few small edits", base, edit(4, base, 3, 10)},
		{"empty basis", nil, base[:100000]},
		{"empty new file", base[:100000], nil},
		{"both empty", nil, nil},
		{"identical", base, base},
		{"shorter than a block", base[:100], edit(5, base[:100], 2, 20)},
		{"unrelated", base[:300000], randBytes(6, 200000)},
		{"repeated blocks", bytes.Repeat([]byte("0123456789abcdef"), 70000), bytes.Repeat([]byte("0123456789abcdef"), 60000)},
		{"bash with 3 edits", bash, edit(7, bash, 3, 3000)},
		{"GPL-3 with 3 edits", gpl, edit(8, gpl, 3, 200)},
		{"50 MB", big, edit(9, big, 30, 100000)},
	}
}

// TestRdiffCompatibility checks signatures, deltas and patches against Debian's rdiff, both ways.
func TestRdiffCompatibility(t *testing.T) {
	requireRdiff(t)
	for _, p := range pairs(t) {
		blockLens := []uint32{0, 1024, 7}
		if len(p.old) > 10<<20 {
			blockLens = []uint32{0, 8192}
		}
		for _, bl := range blockLens {
			t.Run(fmt.Sprintf("%s/b=%d", p.name, bl), func(t *testing.T) {
				t.Parallel()
				checkPair(t, p, bl)
			})
		}
	}
}

func checkPair(t *testing.T, p pair, blockLen uint32) {
	ctx := context.Background()
	dir := t.TempDir()
	oldPath := writeFile(t, dir, "old", p.old)
	newPath := writeFile(t, dir, "new", p.new)
	args := []string{"signature", "-R", "rollsum", "-H", "blake2"}
	if blockLen != 0 {
		args = append(args, "-b", strconv.Itoa(int(blockLen)), "-S", "32")
	}
	rdiff(t, append(args, oldPath, filepath.Join(dir, "rdiff.sig"))...)
	rdiffSig := readFile(t, filepath.Join(dir, "rdiff.sig"))

	// Our signature, of an *os.File as rdiff reads it, is rdiff's byte for byte.
	f, err := os.Open(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ours bytes.Buffer
	if err := Signature(ctx, f, &ours, blockLen); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours.Bytes(), rdiffSig) {
		t.Fatalf("signature differs from rdiff's: %d bytes, rdiff %d; headers %x, %x",
			ours.Len(), len(rdiffSig), ours.Bytes()[:min(12, ours.Len())], rdiffSig[:min(12, len(rdiffSig))])
	}
	sig, err := ParseSignature(bytes.NewReader(rdiffSig), int64(len(rdiffSig)))
	if err != nil {
		t.Fatal(err)
	}

	// Our delta, from rdiff's signature, applied by rdiff patch.
	var d bytes.Buffer
	st, err := DeltaStats(ctx, sig, bytes.NewReader(p.new), &d)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeltaBytes != int64(d.Len()) || st.LiteralBytes+st.CopiedBytes != int64(len(p.new)) || st.SignatureBytes != int64(len(rdiffSig)) {
		t.Errorf("delta stats %+v: delta is %d bytes, new file %d", st, d.Len(), len(p.new))
	}
	ourDelta := writeFile(t, dir, "our.delta", d.Bytes())
	rdiff(t, "patch", oldPath, ourDelta, filepath.Join(dir, "rdiff.out"))
	if !bytes.Equal(readFile(t, filepath.Join(dir, "rdiff.out")), p.new) {
		t.Error("rdiff patch with our delta does not give the new file")
	}

	// rdiff's delta, from our signature, applied by our Patch.
	ourSig := writeFile(t, dir, "our.sig", ours.Bytes())
	rdiff(t, "delta", ourSig, newPath, filepath.Join(dir, "rdiff.delta"))
	checkPatch(t, p, readFile(t, filepath.Join(dir, "rdiff.delta")), nil)

	// Our delta applied by our Patch, with the same statistics.
	checkPatch(t, p, d.Bytes(), &st)
}

// checkPatch applies delta to p.old and compares with p.new; want, if given, are the delta's stats.
func checkPatch(t *testing.T, p pair, delta []byte, want *Stats) {
	t.Helper()
	var out bytes.Buffer
	st, err := PatchStats(context.Background(), bytes.NewReader(p.old), bytes.NewReader(delta), &out, int64(len(p.new)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), p.new) {
		t.Fatalf("patched file differs from the new file (%d bytes, want %d)", out.Len(), len(p.new))
	}
	if st.DeltaBytes != int64(len(delta)) || st.LiteralBytes+st.CopiedBytes != int64(len(p.new)) {
		t.Errorf("patch stats %+v: delta is %d bytes, new file %d", st, len(delta), len(p.new))
	}
	if want != nil && (st.LiteralBytes != want.LiteralBytes || st.CopiedBytes != want.CopiedBytes) {
		t.Errorf("patch stats %+v, delta stats %+v", st, *want)
	}
}

// TestDeltaSize checks that a delta carries about what changed, not the whole file.
func TestDeltaSize(t *testing.T) {
	old := randBytes(10, 4<<20)
	nw := edit(11, old, 10, 1000)
	sig, _ := sigOf(t, old, 0)
	var d bytes.Buffer
	lit, err := Delta(context.Background(), sig, bytes.NewReader(nw), &d)
	if err != nil {
		t.Fatal(err)
	}
	// Ten edits of up to 1000 bytes each spoil at most two blocks.
	if limit := int64(10 * (1000 + 2*int(sig.BlockLen()))); lit > limit || int64(d.Len()) > limit+1000 {
		t.Errorf("delta of 10 small edits: %d literal bytes, %d bytes; want at most %d", lit, d.Len(), limit)
	}
	if sig.BlockLen() != BlockLen(int64(len(old))) || sig.Blocks() != (len(old)+int(sig.BlockLen())-1)/int(sig.BlockLen()) {
		t.Errorf("signature of %d bytes: block length %d, %d blocks", len(old), sig.BlockLen(), sig.Blocks())
	}
}

// TestBlockLen pins rdiff's recommended block lengths.
func TestBlockLen(t *testing.T) {
	for size, want := range map[int64]uint32{-1: 2048, 0: 256, 65536: 256, 65537: 256, 1000000: 896,
		1 << 30: 32768, 10 << 30: 103552, 1 << 50: MaxBlockLen} {
		if got := BlockLen(size); got != want {
			t.Errorf("BlockLen(%d) = %d, want %d", size, got, want)
		}
	}
	var buf bytes.Buffer
	if err := Signature(context.Background(), struct{ *bytes.Buffer }{bytes.NewBufferString("x")}, &buf, 0); err != nil {
		t.Fatal(err)
	}
	if got := buf.Bytes()[4:8]; !bytes.Equal(got, []byte{0, 0, 8, 0}) {
		t.Errorf("block length for a basis of unknown size: %x, want DefaultBlockLen", got)
	}
}

// TestBlockLenWithin checks that signatures fit the bound they are made for.
func TestBlockLenWithin(t *testing.T) {
	const max = 736 << 10
	for _, size := range []int64{-1, 0, 1, 1 << 20, 430e6, 439e6, 1 << 30, 10 << 30, 87e9, 88e9} {
		bl := BlockLenWithin(size, max)
		switch {
		case size > 87e9:
			if bl != 0 {
				t.Errorf("BlockLenWithin(%d) = %d, want 0: no block length fits", size, bl)
			}
		case size <= 430e6 && bl != BlockLen(size):
			t.Errorf("BlockLenWithin(%d) = %d, want rdiff's %d", size, bl, BlockLen(size))
		case size >= 0 && (bl == 0 || SignatureSize(size, bl) > max):
			t.Errorf("BlockLenWithin(%d) = %d: signature of %d bytes", size, bl, SignatureSize(size, bl))
		}
	}
	if _, raw := sigOf(t, randBytes(13, 100000), 300); SignatureSize(100000, 300) != int64(len(raw)) {
		t.Errorf("SignatureSize(100000, 300) = %d, signature is %d bytes", SignatureSize(100000, 300), len(raw))
	}
}

// TestConcurrentDeltas computes deltas against one Sig from many goroutines.
func TestConcurrentDeltas(t *testing.T) {
	old := randBytes(12, 1<<20)
	sig, _ := sigOf(t, old, 1024)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			nw := edit(uint64(100+i), old, 5, 2000)
			var d, out bytes.Buffer
			if _, err := Delta(context.Background(), sig, bytes.NewReader(nw), &d); err != nil {
				t.Error(err)
				return
			}
			if _, err := Patch(context.Background(), bytes.NewReader(old), &d, &out, -1); err != nil || !bytes.Equal(out.Bytes(), nw) {
				t.Errorf("delta %d does not patch back: %v", i, err)
			}
		})
	}
	wg.Wait()
}
