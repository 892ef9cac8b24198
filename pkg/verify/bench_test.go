package verify

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// benchEntries is how many entries BenchmarkFlatten's layer holds (VM2IMAGE_BENCH_ENTRIES).
func benchEntries() int {
	if n, err := strconv.Atoi(os.Getenv("VM2IMAGE_BENCH_ENTRIES")); err == nil && n > 0 {
		return n
	}
	return 200_000
}

// writeSyntheticLayer streams a layer of n entries: directories of 100 small files each, with
// names as long as a Debian system's (about 45 bytes of path on average).
func writeSyntheticLayer(w io.Writer, n int) error {
	tw := tar.NewWriter(w)
	body := make([]byte, 200)
	for i := 0; i < n; i++ {
		var h tar.Header
		dir := fmt.Sprintf("usr/share/package-%05d/", i/100)
		if i%100 == 0 {
			h = tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}
		} else {
			body[0], body[1] = byte(i), byte(i>>8)
			h = tar.Header{Name: fmt.Sprintf("%sfile-%07d.txt", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}
		}
		if err := tw.WriteHeader(&h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(body); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// BenchmarkFlatten flattens a streamed layer of many small files and reports the heap the
// flattened tree holds per entry: the memory verify needs grows with the entries, not the bytes.
func BenchmarkFlatten(b *testing.B) {
	n := benchEntries()
	var perEntry float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeSyntheticLayer(pw, n)) }()
		f := newFlattener(nil)
		if err := f.apply(context.Background(), 0, pr); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if f.t.entries != int64(n)+2 { // with usr and usr/share
			b.Fatalf("%d entries flattened, want %d", f.t.entries, n)
		}
		perEntry = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
		runtime.KeepAlive(f)
	}
	b.ReportMetric(perEntry, "heap-B/entry")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
}
