package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	pkgcache "github.com/vm2image/vm2image/pkg/cache"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// CacheDirEnv overrides where debootstrap roots are cached (outside the repository).
const CacheDirEnv = "VM2IMAGE_CACHE"

// CacheDir returns the directory that holds cached fixture roots.
func CacheDir() string {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return d
	}
	return "/var/cache/vm2image-test"
}

// Recipe describes a Debian root built with debootstrap and an optional customisation script.
type Recipe struct {
	Suite    string   // bookworm, bullseye, trixie
	Variant  string   // minbase (default) or buildd, ...
	Packages []string // --include
	// Script runs with /bin/sh inside the finished root (chroot, /proc mounted) to customise it.
	Script string
	Mirror string // default http://deb.debian.org/debian
}

// Key identifies the recipe's root in the cache.
func (r Recipe) Key() string {
	pk := append([]string(nil), r.Packages...)
	sort.Strings(pk)
	h := sha256.New()
	fmt.Fprintf(h, "v1\n%s\n%s\n%s\n%s\n%s", r.Suite, r.variant(), strings.Join(pk, ","), r.Script, r.mirror())
	return r.Suite + "-" + r.variant() + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func (r Recipe) variant() string {
	if r.Variant == "" {
		return "minbase"
	}
	return r.Variant
}

func (r Recipe) mirror() string {
	if r.Mirror == "" {
		return "http://deb.debian.org/debian"
	}
	return r.Mirror
}

// Root returns the path of the recipe's cached root, building it on first use. Concurrent test
// processes share the cache: one builds while the others wait on a lock. The returned tree must be
// treated as read-only; use Overlay for a writable view.
func Root(t testing.TB, r Recipe) string {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "debootstrap", "chroot")
	dir, err := BuildRoot(r, func(format string, args ...any) { t.Logf(format, args...) })
	if err != nil {
		t.Fatalf("building fixture root %s: %v", r.Key(), err)
	}
	return dir
}

// BuildRoot builds (or finds) the recipe's root in the cache and returns its path.
func BuildRoot(r Recipe, logf func(string, ...any)) (string, error) {
	cache := CacheDir()
	// Private, as the converter's caches: fixture roots hold set-id files and device nodes.
	if err := pkgcache.MkdirPrivate(cache, logf); err != nil {
		return "", err
	}
	final := filepath.Join(cache, r.Key())
	lock, err := os.OpenFile(final+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", final, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(filepath.Join(final, "etc/os-release")); err == nil {
		return final, nil
	}
	tmp := final + ".building"
	_ = os.RemoveAll(tmp)
	args := []string{"--variant=" + r.variant()}
	if len(r.Packages) > 0 {
		args = append(args, "--include="+strings.Join(r.Packages, ","))
	}
	args = append(args, r.Suite, tmp, r.mirror())
	logf("debootstrap %s", strings.Join(args, " "))
	if out, err := exec.Command("debootstrap", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap: %w\n%s", err, tail(out))
	}
	if r.Script != "" {
		if err := RunIn(tmp, r.Script); err != nil {
			return "", err
		}
	}
	// Caches make the roots larger without making the tests better.
	_ = os.RemoveAll(filepath.Join(tmp, "var/cache/apt/archives"))
	_ = os.MkdirAll(filepath.Join(tmp, "var/cache/apt/archives/partial"), 0o755)
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	// The build's identity: a root rebuilt from the same recipe (another cache directory, a
	// cache wiped) differs in mtimes, so whatever was made from the old one must not be reused.
	stamp := fmt.Sprintf("%s.%d", r.Key(), time.Now().UnixNano())
	if err := os.WriteFile(final+".id", []byte(stamp), 0o644); err != nil {
		return "", err
	}
	return final, nil
}

// RootID identifies one build of a cached root (see BuildRoot): the recipe key and when the
// root was built. Label what is made from a root (an engine image, a cache entry) with it.
func RootID(r Recipe) string {
	b, err := os.ReadFile(filepath.Join(CacheDir(), r.Key()+".id"))
	if err != nil {
		return r.Key() // a root built before build stamps existed
	}
	return strings.TrimSpace(string(b))
}

// RunIn runs a shell script chrooted into root with /proc mounted in a private mount namespace.
func RunIn(root, script string) error {
	cmd := exec.Command("unshare", "--mount", "--fork", "--pid", "--mount-proc="+filepath.Join(root, "proc"),
		"chroot", root, "/bin/sh", "-ec", script)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "HOME=/root"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("running script in %s: %w\n%s", root, err, tail(out))
	}
	return nil
}

func tail(b []byte) string {
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
