package debfile

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vm2image/vm2image/pkg/archive"
)

// Entries is a package payload's entries in order, each entry's body read from it after Next:
// an archive/tar Reader, or another archive format converted on the fly (pkg/rpmfile).
type Entries interface {
	Next() (*tar.Header, error)
	io.Reader
}

// ErrPayload marks a payload entry that no layer may hold: a name climbing out of the root, a
// whiteout, a hard link out, an unknown entry type, a body that does not match its header.
var ErrPayload = errors.New("unsafe package payload")

// WritePayload writes a package's payload entries as an OCI layer to w, as WriteLayer does for a
// .deb: the one implementation of the payload rules (names made safe, whiteouts, climbing hard
// links and unknown types refused, excludes, the base's directory links, each path once) for
// every package format (.deb, pacman, rpm). pkg names the package in errors.
func WritePayload(w io.Writer, pkg string, tr Entries, excludes []string, dirLinks map[string]string) (LayerInfo, error) {
	var info LayerInfo
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	tw := tar.NewWriter(cw)
	// Each name once: an engine refuses a layer that holds a path twice ("duplicates of file
	// paths not supported"), and a package that ships lib/x and usr/lib/x lands both at
	// usr/lib/x through a merged-/usr base's links. A directory seen again is left out (the
	// first one stays); anything else seen twice is an error, and the package goes whole into
	// the configuration layer.
	seen := map[string]bool{}  // name -> a directory
	links := map[string]bool{} // the payload's own symlinks
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("%w: %s data: %w", ErrPayload, pkg, err)
		}
		out, drop, err := layerEntry(pkg, hdr, excludes, dirLinks)
		if err != nil || out == nil {
			if drop {
				info.Dropped++
			}
			if err != nil {
				return info, err
			}
			continue
		}
		key := strings.TrimSuffix(out.Name, "/")
		if dir, dup := seen[key]; dup {
			if dir && out.Typeflag == tar.TypeDir {
				continue
			}
			return info, fmt.Errorf("%w: %s ships %q twice (through the base's directory links)", ErrDuplicate, pkg, key)
		}
		if err := underLink(pkg, out, links); err != nil {
			return info, err
		}
		seen[key] = out.Typeflag == tar.TypeDir
		if out.Typeflag == tar.TypeSymlink {
			links[key] = true
		}
		if err := tw.WriteHeader(out); err != nil {
			return info, fmt.Errorf("%w: %s: %s: %v", ErrPayload, pkg, out.Name, err)
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return info, fmt.Errorf("%w: %s: %s: %v", ErrPayload, pkg, out.Name, err)
			}
		}
		info.Entries++
	}
	if err := tw.Close(); err != nil {
		return info, fmt.Errorf("%w: %s: %v", ErrPayload, pkg, err)
	}
	info.DiffID, info.Size = "sha256:"+hex.EncodeToString(h.Sum(nil)), cw.n
	return info, nil
}

// layerEntry is the layer header of a payload entry: nil to leave it out (the root, a base's
// directory link, drop when the excludes cover it), an error (ErrPayload) when no layer may
// hold it.
func layerEntry(pkg string, hdr *tar.Header, excludes []string, dirLinks map[string]string) (out *tar.Header, drop bool, err error) {
	name, err := archive.SafeName(hdr.Name)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", ErrPayload, pkg, err)
	}
	if name == "." {
		return nil, false, nil
	}
	if _, isLink := dirLinks[name]; isLink && hdr.Typeflag == tar.TypeDir {
		return nil, false, nil
	}
	name = throughLinks(name, dirLinks)
	if archive.IsWhiteout(name) {
		return nil, false, fmt.Errorf("%w: %s ships %q, a whiteout name", ErrPayload, pkg, name)
	}
	if excluded(excludes, name) {
		return nil, true, nil
	}
	out, err = payloadHeader(hdr, name)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", ErrPayload, pkg, err)
	}
	if out.Typeflag == tar.TypeLink {
		out.Linkname = throughLinks(out.Linkname, dirLinks)
		if excluded(excludes, out.Linkname) {
			return nil, false, fmt.Errorf("%s: %q is a hard link to %q, which the excludes leave out", pkg, name, out.Linkname)
		}
	}
	return out, false, nil
}

// underLink refuses an entry (or a hard link's target) under a symlink the payload itself
// shipped: "usr/lib/x -> /etc" then "usr/lib/x/passwd" would write through the link wherever
// the layer is applied by something that follows it. No package format installs so (dpkg,
// pacman and rpm ship a directory's files under the directory); such a package goes whole
// into the configuration layer.
func underLink(pkg string, out *tar.Header, links map[string]bool) error {
	if len(links) == 0 {
		return nil
	}
	for _, name := range []string{out.Name, out.Linkname} {
		name = strings.TrimSuffix(name, "/")
		for i := strings.IndexByte(name, '/'); i >= 0; i = next(name, i) {
			if links[name[:i]] {
				return fmt.Errorf("%w: %s ships %q under its own symlink %q", ErrPayload, pkg, name, name[:i])
			}
		}
		if out.Typeflag != tar.TypeLink {
			break
		}
	}
	return nil
}

// next is the index of the '/' after i in name, or -1.
func next(name string, i int) int {
	j := strings.IndexByte(name[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}
