package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2image/vm2image/internal/fixture"
)

// FSDisks returns raw images holding the recipe's root as one filesystem on the whole disk (no
// partition table), built once under a lock: "xfs" (mkfs.xfs, the root copied in under a mount
// in a private namespace) and "btrfs" (mkfs.btrfs --rootdir). The root itself is the reference.
func FSDisks(t testing.TB, r Recipe) (root string, disks map[string]string) {
	t.Helper()
	RequireCommands(t, "mkfs.xfs", "mkfs.btrfs", "unshare", "cp")
	root = Root(t, r)
	id, _ := os.ReadFile(filepath.Join(CacheDir(), r.Key()+".id"))
	sum := sha256.Sum256([]byte("fsdisks-v1\n" + string(id)))
	key := "fsdisks-" + r.Key() + "-" + hex.EncodeToString(sum[:6])
	dir := filepath.Join(CacheDir(), key)
	disks = map[string]string{"xfs": filepath.Join(dir, "root.xfs"), "btrfs": filepath.Join(dir, "root.btrfs")}
	if _, err := fixture.CachedDir(key, t.Logf, func(tmp string) error { return buildFSDisks(root, tmp) }); err != nil {
		t.Fatalf("building the XFS and Btrfs disks: %v", err)
	}
	return root, disks
}

// buildFSDisks makes root.xfs and root.btrfs in dir, each a whole-disk filesystem holding root.
func buildFSDisks(root, dir string) error {
	disks := map[string]string{"xfs": filepath.Join(dir, "root.xfs"), "btrfs": filepath.Join(dir, "root.btrfs")}
	if err := os.MkdirAll(filepath.Join(dir, "mnt"), 0o700); err != nil {
		return err
	}
	for _, f := range disks {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(f, 1<<30); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"mkfs.xfs", "-q", disks["xfs"]},
		// Our own image, mounted to fill it: the namespace ends the mount with the command.
		{"unshare", "-m", "--propagation", "private", "sh", "-c", `mount -o loop "$1" "$2" && cp -a "$3"/. "$2"/ && umount "$2"`, "sh", disks["xfs"], filepath.Join(dir, "mnt"), root},
		{"mkfs.btrfs", "-q", "--rootdir", root, disks["btrfs"]},
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}
