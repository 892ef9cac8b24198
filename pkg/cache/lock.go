package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Lock is a held flock on a lock file: shared while an entry is in use, exclusive while it is
// built or removed.
type Lock struct{ f *os.File }

// LockShared waits for a shared lock on path (created if missing); ctx ends the wait. Flat
// kinds (the image store) are held this way for a whole conversion so that a prune leaves them.
func LockShared(ctx context.Context, path string) (*Lock, error) {
	for {
		l, _, err := lockOnce(path, syscall.LOCK_SH)
		if err != nil || l != nil {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// TryLock takes an exclusive lock on path without waiting; nil when someone holds it.
func TryLock(path string) (*Lock, error) {
	for {
		l, busy, err := lockOnce(path, syscall.LOCK_EX)
		if err != nil || l != nil || busy {
			return l, err
		}
		// Free but replaced meanwhile: try again.
	}
}

// lockOnce tries once, without waiting, to take an flock (syscall.LOCK_SH or LOCK_EX) on path,
// creating it. It returns no lock and busy when another holds it, and neither when path no
// longer names the file it locked: a prune unlinks the lock file of an entry it removes, and a
// lock on an unlinked file protects nothing.
func lockOnce(path string, how int) (l *Lock, busy bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	if !sameFile(f, path) {
		f.Close()
		return nil, false, nil
	}
	return &Lock{f: f}, false, nil
}

// inUse reports whether someone holds a lock on path, without creating it.
func inUse(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// Downgrade turns an exclusive lock into a shared one.
func (l *Lock) Downgrade() error {
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_SH); err != nil {
		return fmt.Errorf("downgrading lock %s: %w", l.f.Name(), err)
	}
	return nil
}

// touch records a use: the lock file's mtime is when its entry was last used.
func (l *Lock) touch() {
	now := time.Now()
	_ = os.Chtimes(l.f.Name(), now, now)
}

// Release lets the lock go; a nil or released Lock is a no-op.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
