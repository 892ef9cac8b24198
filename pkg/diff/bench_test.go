package diff_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/diff"
	"golang.org/x/sys/unix"
)

// The synthetic pair of BenchmarkTrees: 1000 directories of 999 files, 1,000,001 entries in the
// old tree; the new tree has 1% of the files modified, 0.1% deleted, 0.1% with a new mode,
// 100 files added and one directory deleted. Files are empty unless changed (no data blocks),
// and every mtime is the same. Built once, kept under os.TempDir() between runs.
const (
	benchDirs  = 1000
	benchFiles = 999
)

var benchMTime = unix.NsecToTimespec(time.Unix(1_600_000_000, 0).UnixNano())

func benchPair(b *testing.B) (oldDir, newDir string) {
	b.Helper()
	base := filepath.Join(os.TempDir(), "vm2image-bench-1m")
	oldDir, newDir = filepath.Join(base, "old"), filepath.Join(base, "new")
	done := filepath.Join(base, "complete")
	if _, err := os.Stat(done); err == nil {
		return oldDir, newDir
	}
	b.Logf("creating the 1M-entry tree pair under %s (once)", base)
	os.RemoveAll(base)
	for _, side := range []struct {
		dir string
		new bool
	}{{oldDir, false}, {newDir, true}} {
		if err := genTree(side.dir, side.new); err != nil {
			b.Fatalf("creating %s: %v", side.dir, err)
		}
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return oldDir, newDir
}

// genTree writes one side of the pair, directories in parallel.
func genTree(dir string, isNew bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := int(next.Add(1) - 1); d < benchDirs; d = int(next.Add(1) - 1) {
				if isNew && d == benchDirs-1 {
					continue // a deleted directory
				}
				if err := genDir(filepath.Join(dir, fmt.Sprintf("d%04d", d)), d, isNew); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return unix.UtimesNano(dir, []unix.Timespec{benchMTime, benchMTime})
}

func genDir(dir string, d int, isNew bool) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	for f := range benchFiles {
		k := d*benchFiles + f
		mode, content := uint32(0o644), ""
		if isNew {
			switch {
			case k%1000 == 2:
				continue
			case k%100 == 1:
				content = "modified"
			case k%1000 == 3:
				mode = 0o600
			}
		}
		if err := genFile(dfd, fmt.Sprintf("f%04d", f), mode, content); err != nil {
			return err
		}
	}
	if isNew && d%10 == 0 {
		if err := genFile(dfd, "added", 0o644, "new file"); err != nil {
			return err
		}
	}
	return unix.UtimesNano(dir, []unix.Timespec{benchMTime, benchMTime})
}

func genFile(dfd int, name string, mode uint32, content string) error {
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if content != "" {
		if _, err := unix.Write(fd, []byte(content)); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	return unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(unix.TimespecToNsec(benchMTime)), unix.NsecToTimeval(unix.TimespecToNsec(benchMTime))})
}

// heapPeak samples HeapInuse until stopped and returns the highest value seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 {
		close(quit)
		<-done
		return peak.Load()
	}
}

// BenchmarkTrees compares the 1M-entry pair and reports, per entry of both trees: the peak of
// the heap in use above what it was before (peak-B/entry), the bytes allocated meanwhile
// (alloc-B/entry), and the entries merged per second.
//
// The "all-added" case compares an empty tree with the new one: the worst case for memory,
// where every entry is a change that must be kept.
func BenchmarkTrees(b *testing.B) {
	oldDir, newDir := benchPair(b)
	empty := b.TempDir()
	for _, c := range []struct {
		name     string
		old      string
		strategy diff.Strategy
	}{{"rsync", oldDir, diff.Rsync}, {"checksum", oldDir, diff.Checksum}, {"all-added", empty, diff.Rsync}} {
		s := c.strategy
		b.Run(c.name, func(b *testing.B) {
			o, n := open(b, c.old), open(b, newDir)
			var res *diff.Result
			var ms0, ms1 runtime.MemStats
			var peak uint64
			b.ResetTimer()
			for range b.N {
				runtime.GC()
				runtime.ReadMemStats(&ms0)
				stop := heapPeak()
				var err error
				res, err = diff.Trees(context.Background(), o, n, diff.Options{Strategy: s})
				if err != nil {
					b.Fatal(err)
				}
				if p := stop(); p > ms0.HeapInuse {
					peak = max(peak, p-ms0.HeapInuse)
				}
				runtime.ReadMemStats(&ms1)
			}
			entries := float64(res.Stats.OldEntries + res.Stats.NewEntries)
			b.ReportMetric(float64(peak)/entries, "peak-B/entry")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/entries, "alloc-B/entry")
			b.ReportMetric(entries*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			b.ReportMetric(float64(len(res.Changes)), "changes")
			runtime.KeepAlive(res)
		})
	}
}
