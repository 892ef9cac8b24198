package convert

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// benchLayer writes a 64 MiB layer tar shaped like a VM diff: 6000 files, most of them small
// (config, scripts, keys), a few large (binaries, databases).
func benchLayer(b *testing.B) string {
	benchLayerPath := filepath.Join(b.TempDir(), "layer.tar")
	func() {
		f, err := os.Create(benchLayerPath)
		if err != nil {
			b.Fatal(err)
		}
		bw := bufio.NewWriter(f)
		tw := tar.NewWriter(bw)
		rng := rand.New(rand.NewSource(1))
		body := make([]byte, 8<<20)
		rng.Read(body)
		total := 0
		for i := 0; total < 64<<20; i++ {
			size := 512 + rng.Intn(8<<10)
			if i%200 == 0 {
				size = 1<<20 + rng.Intn(6<<20)
			}
			if err := tw.WriteHeader(&tar.Header{Name: "usr/share/f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}); err != nil {
				b.Fatal(err)
			}
			tw.Write(body[:size])
			total += size
		}
		tw.Close()
		bw.Flush()
		f.Close()
	}()
	b.ResetTimer()
	return benchLayerPath
}

func fileSize(b *testing.B, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkSecretScan scans a layer for secret files: headers and the first 16 KiB of files up
// to 1 MiB, seeking over the rest.
func BenchmarkSecretScan(b *testing.B) {
	p := benchLayer(b)
	b.SetBytes(fileSize(b, p))
	for i := 0; i < b.N; i++ {
		if _, err := scanLayerFile(p, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecretScanBaselineRead is one plain read of the layer: the least any further pass
// over it costs.
func BenchmarkSecretScanBaselineRead(b *testing.B) {
	p := benchLayer(b)
	b.SetBytes(fileSize(b, p))
	for i := 0; i < b.N; i++ {
		f, _ := os.Open(p)
		io.Copy(io.Discard, f)
		f.Close()
	}
}

// BenchmarkSecretScanBaselineGzip compresses the layer as the image writer does by default.
func BenchmarkSecretScanBaselineGzip(b *testing.B) {
	p := benchLayer(b)
	b.SetBytes(fileSize(b, p))
	for i := 0; i < b.N; i++ {
		f, _ := os.Open(p)
		zw := gzip.NewWriter(io.Discard)
		io.Copy(zw, f)
		zw.Close()
		f.Close()
	}
}
