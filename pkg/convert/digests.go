package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/source"
)

// The digests of a cached root's files are kept with the cache (IMAGES/digests/KEY.json, KEY
// the root's cache key), so a warm conversion hashes only the VM's side of the checksum
// strategy. A recorded digest is used only while its file is still the one that was hashed:
// same inode, size, modification and change times to the nanosecond. Rewriting a file changes
// its ctime, which user space cannot set back, and a file renamed over it has another inode; any
// difference means the file is hashed again and its record replaced. A file changed less than
// fswalk.RacyWindow before it was hashed is not recorded (the ctime clock is coarse). An index
// that cannot be read is an empty one.

// digestRacy: files changed this recently are not recorded.
var digestRacy = fswalk.RacyWindow

// fileStamp identifies one state of a file.
type fileStamp struct {
	Ino   uint64 `json:"i"`
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
}

type digestRecord struct {
	fileStamp
	Digest string `json:"d"`
}

// digestTree is a cached root as a diff tree whose Hash answers from the index when it can.
type digestTree struct {
	source.Source
	root  *os.Root
	path  string // the index file
	mu    sync.Mutex
	recs  map[string]digestRecord
	dirty bool
	hits  atomic.Int64
}

// openDigestTree opens the cached root dir (cache key key) with its digest index.
func (r *run) openDigestTree(dir, key string) (*digestTree, error) {
	src, err := source.OpenDir(dir, "base+packages")
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	t := &digestTree{Source: src, root: root, recs: map[string]digestRecord{},
		path: filepath.Join(r.cacheRoot().Path(cache.Images), "digests", key+".json")}
	if b, err := os.ReadFile(t.path); err == nil {
		if json.Unmarshal(b, &t.recs) != nil {
			t.recs = map[string]digestRecord{}
		}
	}
	return t, nil
}

// stamp reads p's state, inside the root, without following a final symlink; ok is false for
// anything but a regular file.
func (t *digestTree) stamp(p string) (fileStamp, bool) {
	fi, err := t.root.Lstat(strings.TrimLeft(p, "/"))
	if err != nil || !fi.Mode().IsRegular() {
		return fileStamp{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}, false
	}
	return fileStamp{Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}, true
}

// Hash answers from the index for files whose stamp is the recorded one and hashes the others.
func (t *digestTree) Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error) {
	res := make([]fswalk.HashResult, len(paths))
	stamps := make([]fileStamp, len(paths))
	var miss []int
	t.mu.Lock()
	for i, p := range paths {
		res[i].Path = p
		st, ok := t.stamp(p)
		stamps[i] = st
		if rec, have := t.recs[p]; ok && have && rec.fileStamp == st {
			res[i].Digest, res[i].Size = rec.Digest, st.Size
			continue
		}
		miss = append(miss, i)
	}
	t.mu.Unlock()
	t.hits.Add(int64(len(paths) - len(miss)))
	if len(miss) == 0 {
		return res, nil
	}
	mp := make([]string, len(miss))
	for k, i := range miss {
		mp[k] = paths[i]
	}
	hr, err := t.Source.Hash(ctx, mp)
	if err != nil {
		return nil, err
	}
	if len(hr) != len(mp) {
		return nil, fmt.Errorf("hashing %d files: got %d digests", len(mp), len(hr))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, i := range miss {
		res[i] = hr[k]
		// Recorded only when the file was the same before and after it was hashed, and was not
		// changed within the racy window (fswalk.DigestMemo).
		after, ok := t.stamp(paths[i])
		racy := time.Now().UnixNano() - max(after.Mtime, after.Ctime)
		if hr[k].Err == "" && ok && after == stamps[i] && after.Size == hr[k].Size && racy >= int64(digestRacy) {
			t.recs[paths[i]] = digestRecord{fileStamp: after, Digest: hr[k].Digest}
			t.dirty = true
		}
	}
	return res, nil
}

// save writes the index when it learnt digests; a failure costs the next conversion hashing.
func (t *digestTree) save() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.dirty {
		return
	}
	b, err := json.Marshal(t.recs)
	if err == nil {
		err = writePrivateAtomic(t.path, b)
	}
	if err == nil {
		t.dirty = false
	}
}

func (t *digestTree) Close() error {
	t.root.Close()
	return t.Source.Close()
}

// writePrivateAtomic writes b to path through a temporary file renamed over it; the directory
// is made private.
func writePrivateAtomic(path string, b []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), cache.PrivateMode); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
