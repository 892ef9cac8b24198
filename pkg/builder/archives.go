package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vm2image/vm2image/internal/filecopy"
	"github.com/vm2image/vm2image/internal/rootfs"
	"github.com/vm2image/vm2image/pkg/cache"
)

// The apt archive cache is shared between builds without a lock: each build gets a private
// directory seeded with copies of the shared .deb files (apt locks its archive directory and
// does not wait for that lock, so builds cannot share one directory), and what it downloaded is
// copied back. apt trusts a .deb already in its archive directory when its size matches, so the
// shared files must be ones no untrusted code could have written:
//   - the cache is partitioned by the base's digest and the VM's repository configuration
//     (archiveShareKey): a base image or a repository can only ever feed builds that already run
//     that base's apt against that repository;
//   - seeds are copies (reflinks where the filesystem has them), never hard links, so nothing a
//     build runs can write into a shared file's inode;
//   - only what the first download step fetched is published, right after it and before any
//     package's code has run in the build root (publishOnce); later downloads (second pass,
//     retried lines) run the root's apt after packages could have replaced it, and stay private.

// archiveShareKey names the partition of the shared archive cache that in may use: a digest of
// the base and of the repository files carried in from the VM.
func archiveShareKey(in Input) string {
	h := sha256.New()
	fmt.Fprintf(h, "vm2image apt archives v1\nbase %q\n", in.BaseDigest)
	paths := make([]string, 0, len(in.RepoFiles))
	for p := range in.RepoFiles {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "file %q %d\n", p, len(in.RepoFiles[p]))
		h.Write(in.RepoFiles[p])
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// seedArchives fills dir (created) with copies of the .deb files of shared (created if
// missing).
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
	return copyDebs(shared, dir)
}

// publishArchives copies the .deb files of dir that shared lacks into shared.
func publishArchives(dir, shared string) error {
	if err := cache.MkdirPrivate(shared, nil); err != nil {
		return fmt.Errorf("creating apt archive cache: %w", err)
	}
	l, err := holdArchives(shared)
	if err != nil {
		return err
	}
	defer l.Release()
	return copyDebs(dir, shared)
}

// holdArchives holds the shared archive directory while files are linked in or out of it, so
// that a prune (pkg/cache) leaves it alone meanwhile.
func holdArchives(shared string) (*cache.Lock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return cache.LockShared(ctx, filepath.Join(shared, cache.StoreLock))
}

// copyDebs copies (reflinks where it can) every complete package file (.deb; pacman's and rpm's,
// pkgfiles.go) of from that to lacks into to, atomically.
func copyDebs(from, to string) error {
	des, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("reading apt archives: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		if !de.Type().IsRegular() || !isPackageFile(name) {
			continue
		}
		dst := filepath.Join(to, name)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		tmp := filepath.Join(to, ".tmp-"+randomSuffix()+"-"+name)
		// A copy sharing no inode with the source (a reflink where the filesystem has them).
		if err := filecopy.Copy(context.Background(), filepath.Join(from, name), tmp, 0o644, filecopy.Exclusive, filecopy.Reflink); err != nil {
			return fmt.Errorf("sharing apt archive %s: %w", name, err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("sharing apt archive %s: %w", name, err)
		}
	}
	return nil
}

// userID returns the uid of name in the root's /etc/passwd, or -1.
func userID(root, name string) int {
	// The base's passwd: read through its root (never a link out of it), bounded.
	b, err := rootfs.ReadFile(root, "etc/passwd", 16<<20)
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

// HoldArchives holds the shared archive directory dir (Result.Archives) against a prune until
// release is called; a missing directory is no error ("" and a no-op).
func HoldArchives(dir string) (held string, release func(), err error) {
	if dir == "" {
		return "", func() {}, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return "", func() {}, nil
	}
	l, err := holdArchives(dir)
	if err != nil {
		return "", nil, err
	}
	return dir, l.Release, nil
}
