package builder

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// exitError is a command that ran and exited with a non-zero status.
type exitError struct {
	argv []string
	code int
}

func (e *exitError) Error() string {
	cmd := strings.Join(e.argv, " ")
	if len(e.argv) > 3 {
		cmd = fmt.Sprintf("%s (and %d more arguments)", strings.Join(e.argv[:2], " "), len(e.argv)-2)
	}
	return fmt.Sprintf("%s exited with status %d", cmd, e.code)
}

// cleanRel turns an absolute path inside the root into a clean relative one, refusing paths
// that are not absolute, climb out with "..", or name the root itself.
func cleanRel(p string) (string, error) {
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q: want an absolute path", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q: \"..\" is not allowed", p)
		}
	}
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" || rel == "." {
		return "", fmt.Errorf("path %q names the root", p)
	}
	return rel, nil
}

// copyMeta gives dst the mode, owner and modification time fi describes.
func copyMeta(fi fs.FileInfo, dst string) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(dst, time.Time{}, fi.ModTime())
}
