package verify

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vm2image/vm2image/pkg/source"
)

// TestImageProgress: a comparison with Options.Progress reports its total before any content
// is read (the layers' blob sizes from the manifest and the VM files' sizes from its metadata),
// and the bytes it reads and hashes reach exactly that total.
func TestImageProgress(t *testing.T) {
	root := vmRoot(t)
	big := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	must(t, os.WriteFile(filepath.Join(root, "srv/big"), big, 0o644))
	layers := append(imageLayers(t), layerTar(t, te{name: "srv/big", body: string(big)}))
	var mu sync.Mutex
	var calls int
	var last, total int64
	var totals []int64
	opts := Options{Progress: func(done, tot int64) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		last = max(last, done)
		totals = append(totals, tot)
		total = tot
	}}
	rep := verifyDir(t, root, opts, layers...)
	if !rep.Equal {
		t.Fatalf("not equal: %+v", rep.Differences)
	}
	var blobs int64
	for _, b := range layers {
		blobs += int64(len(b)) // at least as large as the gzip the image holds of random bytes
	}
	t.Logf("%d calls, %d of %d bytes", calls, last, total)
	if total < 2*int64(len(big)) || total > blobs+int64(len(big))+1<<20 {
		t.Errorf("total %d: want the VM's files (%d bytes of srv/big) and the image's blobs", total, len(big))
	}
	if last != total {
		t.Errorf("done %d at the end, want the total %d", last, total)
	}
	for i, tot := range totals {
		if tot != total {
			t.Fatalf("call %d had total %d, want %d from the start", i, tot, total)
		}
	}
	if calls < 3 {
		t.Errorf("%d calls: progress not reported while reading", calls)
	}
}

// TestEngineImageProgress: from the Docker engine, the total is the engine's size of the image
// plus the VM's files, and the bytes counted are those of the saved stream read plus the VM's.
func TestEngineImageProgress(t *testing.T) {
	root := vmRoot(t)
	src, err := source.Open(context.Background(), "dir:"+root, source.Options{})
	must(t, err)
	defer src.Close()
	save := savedStream(t, imageLayers(t), false, false)
	var mu sync.Mutex
	var last, total int64
	opts := Options{Progress: func(done, tot int64) {
		mu.Lock()
		defer mu.Unlock()
		last, total = max(last, done), tot
	}}
	eng := &fakeEngine{labels: map[string]string{"org.vm2image.excludes": `["/tmp/*"]`}, save: save, size: 1000}
	r, err := EngineImage(context.Background(), eng, "web", src, opts)
	if err != nil || !r.Equal {
		t.Fatalf("%v %+v", err, r)
	}
	var vmBytes int64 // the VM's regular files: /tmp excluded, dev/ a mount point not walked
	for _, p := range []string{"etc/conf", "etc/secret", "bin/tool", "bin/tool2", "srv/www/docs/index.html", "var/lib/dpkg/status"} {
		fi, err := os.Stat(filepath.Join(root, p))
		must(t, err)
		vmBytes += fi.Size()
	}
	if total != 1000+vmBytes || last != int64(len(save))+vmBytes {
		t.Errorf("%d of %d bytes; want %d (the stream and the VM's files) of %d (the engine's size and the VM's files)", last, total, int64(len(save))+vmBytes, 1000+vmBytes)
	}
}
