package archive

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkApplyLayer applies a real packages layer (VM2IMAGE_BENCH_LAYER, an uncompressed layer
// tar) to a copy of a real base root (VM2IMAGE_BENCH_BASE), as the cold conversion builds its
// base+packages tree: "stream" writes every file from the layer; "donor" moves the files from a
// directory holding them (the layer unpacked by GNU tar beforehand, untimed, standing in for the
// build's overlay upper directory). Both time the copy of the base too. Needs root and ~3x the
// layer's size on disk; skipped without the variables.
func BenchmarkApplyLayer(b *testing.B) {
	layer, base := os.Getenv("VM2IMAGE_BENCH_LAYER"), os.Getenv("VM2IMAGE_BENCH_BASE")
	if layer == "" || base == "" || os.Geteuid() != 0 {
		b.Skip("set VM2IMAGE_BENCH_LAYER and VM2IMAGE_BENCH_BASE, run as root")
	}
	for _, mode := range []string{"stream", "donor"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := b.TempDir()
				tree, donor := filepath.Join(dir, "tree"), filepath.Join(dir, "donor")
				os.Mkdir(tree, 0o755)
				os.Mkdir(donor, 0o755)
				opts := []Option{Layer()}
				taken := 0
				if mode == "donor" {
					if out, err := exec.Command("tar", "-C", donor, "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", layer).CombinedOutput(); err != nil {
						b.Fatalf("tar: %v: %s", err, out)
					}
					opts = append(opts, Donor(donor, &taken))
				}
				exec.Command("sync").Run()
				b.StartTimer()
				if out, err := exec.Command("cp", "-a", "--reflink=auto", base+"/.", tree+"/").CombinedOutput(); err != nil {
					b.Fatalf("cp: %v: %s", err, out)
				}
				f, err := os.Open(layer)
				if err != nil {
					b.Fatal(err)
				}
				err = Apply(context.Background(), tree, f, opts...)
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(taken), "taken")
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}
