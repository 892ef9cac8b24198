package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vm2image/vm2image/pkg/cache"
)

// The apt archive cache is shared between builds without a lock: each build gets a private
// directory seeded with hard links to the shared .deb files (apt locks its archive directory and
// does not wait for that lock, so builds cannot share one directory), and what it downloaded is
// linked back when it ends. .deb names carry name, version and architecture, so two builds that
// download the same file download the same bytes, and a link that exists already is kept.

// seedArchives fills dir (created) with links to the .deb files of shared (created if missing).
// Where links cannot be made (another filesystem) the files are copied.
func seedArchives(shared, dir string, aptUID int) error {
	if err := cache.MkdirPrivate(shared, nil); err != nil {
		return fmt.Errorf("creating apt archive cache: %w", err)
	}
	l, err := holdArchives(shared)
	if err != nil {
		return err
	}
	defer l.Release()
	partial := filepath.Join(dir, "partial")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		return err
	}
	if aptUID > 0 { // apt downloads as _apt into partial/
		_ = os.Chown(partial, aptUID, 0)
	}
	return linkDebs(shared, dir)
}

// publishArchives links the .deb files of dir that shared lacks into shared.
func publishArchives(dir, shared string) error {
	l, err := holdArchives(shared)
	if err != nil {
		return err
	}
	defer l.Release()
	return linkDebs(dir, shared)
}

// holdArchives holds the shared archive directory while files are linked in or out of it, so
// that a prune (pkg/cache) leaves it alone meanwhile.
func holdArchives(shared string) (*cache.Lock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return cache.LockShared(ctx, filepath.Join(shared, cache.StoreLock))
}

// linkDebs links (or copies) every complete .deb of from that to lacks into to, atomically.
func linkDebs(from, to string) error {
	des, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("reading apt archives: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !strings.HasSuffix(name, ".deb") || strings.HasPrefix(name, ".") {
			continue
		}
		dst := filepath.Join(to, name)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		tmp := filepath.Join(to, ".tmp-"+randomSuffix()+"-"+name)
		if err := linkOrCopy(filepath.Join(from, name), tmp); err != nil {
			return fmt.Errorf("sharing apt archive %s: %w", name, err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("sharing apt archive %s: %w", name, err)
		}
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	return copyFile(src, dst)
}

// userID returns the uid of name in the root's /etc/passwd, or -1.
func userID(root, name string) int {
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 2 && f[0] == name {
			var uid int
			if _, err := fmt.Sscanf(f[2], "%d", &uid); err == nil {
				return uid
			}
		}
	}
	return -1
}

// isNotExist is errors.Is(err, fs.ErrNotExist), short.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
