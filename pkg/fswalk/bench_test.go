//go:build linux

package fswalk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// benchTree is generated once per test binary: 100 directories of 200 files, 200 MB in all.
var benchTree struct {
	once    sync.Once
	dir     string
	entries int64
	bytes   int64
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchTree.dir != "" {
		os.RemoveAll(benchTree.dir)
	}
	os.Exit(code)
}

func benchDir(b *testing.B) string {
	b.Helper()
	benchTree.once.Do(func() {
		benchTree.dir, benchTree.err = os.MkdirTemp("", "fswalk-bench-")
		if benchTree.err != nil {
			return
		}
		benchTree.entries, benchTree.bytes, benchTree.err = generateTree(benchTree.dir, 100, 200, 200<<20)
	})
	if benchTree.err != nil {
		b.Fatal(benchTree.err)
	}
	return benchTree.dir
}

// generateTree writes dirs*files files of varied sizes adding up to total bytes.
func generateTree(dir string, dirs, files int, total int64) (entries, size int64, err error) {
	n := int64(dirs * files)
	chunk := make([]byte, 2*total/n)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8)
	}
	for d := 0; d < dirs; d++ {
		sub := filepath.Join(dir, fmt.Sprintf("dir%03d", d))
		if err := os.Mkdir(sub, 0755); err != nil {
			return 0, 0, err
		}
		entries++
		for f := 0; f < files; f++ {
			sz := int64(len(chunk)) * int64((d*files+f)%100) / 99 // 0 .. 2*average
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%04d", f)), chunk[:sz], 0644); err != nil {
				return 0, 0, err
			}
			entries++
			size += sz
		}
	}
	return entries + 1, size, nil
}

func BenchmarkWriteTar(b *testing.B) {
	dir := benchDir(b)
	b.SetBytes(benchTree.bytes)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := WriteTar(context.Background(), io.Discard, dir, Options{Xattrs: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchTree.entries)*float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

func BenchmarkWalk(b *testing.B) {
	dir := benchDir(b)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if err := Walk(context.Background(), dir, Options{Xattrs: true}, func(*fsmeta.Entry) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchTree.entries)*float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

func BenchmarkWriteTarNoXattrs(b *testing.B) {
	dir := benchDir(b)
	b.SetBytes(benchTree.bytes)
	for b.Loop() {
		if _, err := WriteTar(context.Background(), io.Discard, dir, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWalkDigest(b *testing.B) {
	dir := benchDir(b)
	b.SetBytes(benchTree.bytes)
	for b.Loop() {
		if err := Walk(context.Background(), dir, Options{Digest: true}, func(*fsmeta.Entry) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGNUTar is the yardstick: GNU tar writing the same tree to a pipe. (With -f /dev/null
// GNU tar notices and does not read the files at all.)
func BenchmarkGNUTar(b *testing.B) {
	dir := benchDir(b)
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("no tar")
	}
	b.SetBytes(benchTree.bytes)
	start := time.Now()
	for b.Loop() {
		cmd := exec.Command("tar", "-C", dir, "-cf", "-", ".")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%v: %s", err, stderr.Bytes())
		}
	}
	b.ReportMetric(float64(benchTree.entries)*float64(b.N)/time.Since(start).Seconds(), "entries/s")
}
