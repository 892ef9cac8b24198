package fswalk

import (
	"sync"
	"time"
)

// DigestMemo remembers the digests HashMemo computed, by file identity and state: device, inode,
// size, modification and change times to the nanosecond. A file whose contents are rewritten
// gets a new change time (user space cannot set it back), so it is hashed again even when its
// size and mtime are the same. A file changed less than RacyWindow before it was hashed is not
// remembered: the kernel's clock for ctime is coarse, so a second write in the same tick would
// leave every time stamp as it was (git's "racy" rule). A long-lived agent keeps one memo, so a
// warm conversion hashes only the files that changed since the last one. Safe for concurrent use.
type DigestMemo struct {
	mu   sync.Mutex
	m    map[fileState]string
	max  int
	racy time.Duration
	now  func() time.Time
}

// RacyWindow: files changed this recently are not remembered.
const RacyWindow = 2 * time.Second

// fileState identifies one state of one file.
type fileState struct {
	dev, ino           uint64
	size, mtime, ctime int64
}

// NewDigestMemo returns a memo of at most max digests (it starts over when full).
func NewDigestMemo(max int) *DigestMemo {
	return &DigestMemo{m: map[fileState]string{}, max: max, racy: RacyWindow, now: time.Now}
}

func (d *DigestMemo) get(s fileState) (string, bool) {
	if d == nil {
		return "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[s]
	return v, ok
}

func (d *DigestMemo) put(s fileState, digest string) {
	if d == nil {
		return
	}
	now := d.now().UnixNano()
	if now-s.ctime < int64(d.racy) || now-s.mtime < int64(d.racy) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.m) >= d.max {
		clear(d.m)
	}
	d.m[s] = digest
}

// Len is how many digests the memo holds.
func (d *DigestMemo) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}
