package delta

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// benchPair is a 100 MB file and a copy with 1% of it changed: 100 edits of up to 20 KB
// (inserts, deletes and overwrites, about 1 MB in all).
func benchPair(b *testing.B) (old, nw []byte) {
	old = randBytes(40, 100<<20)
	return old, edit(41, old, 100, 20000)
}

// BenchmarkDelta100MB measures the delta of a 100 MB file with 1% changes against the
// signature of the original, at rdiff's block length for its size; delta/file is the delta's
// size over the file's.
func BenchmarkDelta100MB(b *testing.B) {
	old, nw := benchPair(b)
	sig, _ := sigOf(b, old, 0)
	b.SetBytes(int64(len(nw)))
	b.ResetTimer()
	var st Stats
	for b.Loop() {
		var err error
		if st, err = DeltaStats(context.Background(), sig, bytes.NewReader(nw), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(st.DeltaBytes)/float64(len(nw)), "delta/file")
	b.ReportMetric(float64(st.DeltaBytes)/1e6, "delta-MB")
	b.ReportMetric(float64(sig.Size())/1e3, "sig-kB")
}

// BenchmarkDeltaUnrelated100MB is the worst case: nothing matches, every byte rolls.
func BenchmarkDeltaUnrelated100MB(b *testing.B) {
	old, _ := benchPair(b)
	nw := randBytes(42, len(old))
	sig, _ := sigOf(b, old, 0)
	b.SetBytes(int64(len(nw)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Delta(context.Background(), sig, bytes.NewReader(nw), io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignature100MB measures signatures at rdiff's block length for 100 MB.
func BenchmarkSignature100MB(b *testing.B) {
	old, _ := benchPair(b)
	b.SetBytes(int64(len(old)))
	b.ResetTimer()
	for b.Loop() {
		if err := Signature(context.Background(), bytes.NewReader(old), io.Discard, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatch100MB applies the delta of BenchmarkDelta100MB.
func BenchmarkPatch100MB(b *testing.B) {
	old, nw := benchPair(b)
	sig, _ := sigOf(b, old, 0)
	var d bytes.Buffer
	if _, err := Delta(context.Background(), sig, bytes.NewReader(nw), &d); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(nw)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Patch(context.Background(), bytes.NewReader(old), bytes.NewReader(d.Bytes()), io.Discard, int64(len(nw))); err != nil {
			b.Fatal(err)
		}
	}
}
