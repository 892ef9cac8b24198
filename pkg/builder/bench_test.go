package builder

import (
	"context"
	"testing"
	"time"
)

// BenchmarkInstall builds the fixture VM's packages layer with fsync on and off (eatmydata,
// dpkg's unsafe-io), in both backends, side by side in one run. Every build starts from an
// empty layer cache; the apt archive cache is warm, so downloads do not count. It reports the
// install time, the layer time, and the plan's roots (install set -> install line).
//
//	go test -run '^$' -bench BenchmarkInstall -benchtime 1x ./pkg/builder
func BenchmarkInstall(b *testing.B) {
	f := newFixture(b)
	image := ""
	for _, mode := range []struct {
		name    string
		backend string
		fsync   bool
		method  string
	}{
		{"chroot/fsync", Chroot, true, ""},
		{"chroot/eatmydata", Chroot, false, NoFsyncEatMyData},
		{"chroot/unsafe-io", Chroot, false, NoFsyncUnsafeIO},
		{"docker/fsync", Docker, true, ""},
		{"docker/eatmydata", Docker, false, NoFsyncEatMyData},
	} {
		b.Run(mode.name, func(b *testing.B) {
			in := f.input()
			if mode.backend == Docker {
				if image == "" {
					image = importBase(b, f.baseRoot)
				}
				in.BaseImage = image
			}
			var install, lay, clean time.Duration
			var res *Result
			for i := 0; i < b.N; i++ {
				opts := testOptions(b, mode.backend)
				opts.Fsync, opts.NoFsyncMethod = mode.fsync, mode.method
				opts.Logf = func(string, ...any) {}
				r, cleanup, err := Build(context.Background(), in, opts)
				if err != nil {
					b.Fatal(err)
				}
				res = r
				install += r.InstallTime
				lay += r.LayerTime
				t0 := time.Now()
				_ = cleanup()
				clean += time.Since(t0)
			}
			b.ReportMetric(install.Seconds()/float64(b.N), "install-s/op")
			b.ReportMetric(lay.Seconds()/float64(b.N), "layer-s/op")
			b.ReportMetric(clean.Seconds()/float64(b.N), "cleanup-s/op")
			b.ReportMetric(float64(res.RootsBefore), "roots-before")
			b.ReportMetric(float64(res.RootsAfter), "roots-after")
			b.ReportMetric(float64(res.LayerSize)/1e6, "layer-MB")
		})
	}
}

// BenchmarkCacheHit measures the wall time of a Build whose layer is in the cache.
func BenchmarkCacheHit(b *testing.B) {
	f := newFixture(b)
	opts := testOptions(b, Chroot)
	opts.Logf = func(string, ...any) {}
	_, cleanup, err := Build(context.Background(), f.input(), opts)
	if err != nil {
		b.Fatal(err)
	}
	_ = cleanup()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, cleanup, err := Build(context.Background(), f.input(), opts)
		if err != nil || !res.CacheHit {
			b.Fatalf("build: %v, hit %v", err, res != nil && res.CacheHit)
		}
		_ = cleanup()
	}
}
