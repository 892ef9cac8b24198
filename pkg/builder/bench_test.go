package builder

import (
	"context"
	"testing"
	"time"
)

// installModes are the ways BenchmarkInstall builds the same plan.
var installModes = []struct {
	name    string
	backend string
	fsync   bool
	method  string
}{
	{"chroot-fsync", Chroot, true, ""},
	{"chroot-eatmydata", Chroot, false, NoFsyncEatMyData},
	{"chroot-unsafeio", Chroot, false, NoFsyncUnsafeIO},
	{"docker-fsync", Docker, true, ""},
	{"docker-eatmydata", Docker, false, NoFsyncEatMyData},
}

// BenchmarkInstall builds the fixture VM's packages layer with fsync on and off (eatmydata,
// dpkg's unsafe-io) in both backends, side by side: each iteration builds once in every mode,
// in turn, so that load from elsewhere spreads over all of them. Every build starts from an
// empty layer cache; the apt archive cache is warm, so downloads do not count. It reports each
// mode's fastest install time (seconds), the plan's roots (install set -> install line) and the
// layer's size.
//
//	go test -run '^$' -bench BenchmarkInstall -benchtime 3x ./pkg/builder
func BenchmarkInstall(b *testing.B) {
	f := newFixture(b)
	in := f.input()
	in.BaseImage = importBase(b, f.baseRoot)
	best := map[string]time.Duration{}
	var res *Result
	for i := 0; i < b.N; i++ {
		for _, m := range installModes {
			opts := testOptions(b, m.backend)
			opts.Fsync, opts.NoFsyncMethod = m.fsync, m.method
			opts.Logf = func(string, ...any) {}
			r, cleanup, err := Build(context.Background(), in, opts)
			if err != nil {
				b.Fatal(err)
			}
			_ = cleanup()
			res = r
			b.Logf("round %d %s: install %s, layer %s", i+1, m.name, r.InstallTime.Round(time.Millisecond), r.LayerTime.Round(time.Millisecond))
			if d, ok := best[m.name]; !ok || r.InstallTime < d {
				best[m.name] = r.InstallTime
			}
		}
	}
	for _, m := range installModes {
		b.ReportMetric(best[m.name].Seconds(), m.name+"-s")
	}
	b.ReportMetric(float64(res.RootsBefore), "roots-before")
	b.ReportMetric(float64(res.RootsAfter), "roots-after")
	b.ReportMetric(float64(res.LayerSize)/1e6, "layer-MB")
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

// BenchmarkSandbox builds the fixture VM's packages layer with the chroot backend's sandbox
// (namespaces, pivot_root, an offline install step) and with the plain chroot(2) it replaced,
// alternating, fsync off through eatmydata in both. It reports each one's fastest install time
// (seconds).
//
//	go test -run '^$' -bench BenchmarkSandbox -benchtime 3x ./pkg/builder
func BenchmarkSandbox(b *testing.B) {
	f := newFixture(b)
	best := map[string]time.Duration{}
	modes := []struct {
		name  string
		plain bool
	}{{"sandbox", false}, {"plain-chroot", true}}
	for i := 0; i < b.N; i++ {
		for _, m := range modes {
			opts := testOptions(b, Chroot)
			opts.NoFsyncMethod, opts.unsandboxed = NoFsyncEatMyData, m.plain
			opts.Logf = func(string, ...any) {}
			r, cleanup, err := Build(context.Background(), f.input(), opts)
			if err != nil {
				b.Fatal(err)
			}
			_ = cleanup()
			b.Logf("round %d %s: install %s", i+1, m.name, r.InstallTime.Round(time.Millisecond))
			if d, ok := best[m.name]; !ok || r.InstallTime < d {
				best[m.name] = r.InstallTime
			}
		}
	}
	for _, m := range modes {
		b.ReportMetric(best[m.name].Seconds(), m.name+"-s")
	}
}
