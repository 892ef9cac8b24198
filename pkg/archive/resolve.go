package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

var errNotDir = errors.New("not a directory")

const maxSymlinkHops = 40

// resolveDir returns the directory rel as a name in the root with no symlink left in it:
// symlinks are followed inside the root (absolute targets from the root, as in a chroot), and
// refused when they climb above it. Missing directories are made when create is set; else the
// error wraps fs.ErrNotExist.
func (a *applier) resolveDir(rel string, create bool) (string, error) {
	cur := "."
	comps := splitPath(rel)
	for hops := 0; len(comps) > 0; {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case ".":
			continue
		case "..":
			if cur == "." {
				return "", fmt.Errorf("%w: %s climbs out with ..", ErrUnsafePath, rel)
			}
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := a.root.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := a.root.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			cur = next
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0 && a.opts.layer:
			// An engine unpacks a layer into a directory of its own, where next is a plain
			// directory that hides the symlink of the layers below.
			return "", fmt.Errorf("%w: %s lies below the symlink %s", ErrEngineDiffers, rel, next)
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxSymlinkHops {
				return "", fmt.Errorf("too many symlinks in %s", rel)
			}
			t, err := a.root.Readlink(next)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(t, "/") {
				cur = "."
			} else if c := path.Clean(path.Join(cur, t)); c == ".." || strings.HasPrefix(c, "../") {
				return "", fmt.Errorf("%w: symlink %s -> %s", ErrUnsafePath, next, t)
			}
			comps = append(splitPath(t), comps...)
		case fi.IsDir():
			cur = next
		default:
			return "", fmt.Errorf("%s: %w", next, errNotDir)
		}
	}
	return cur, nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
