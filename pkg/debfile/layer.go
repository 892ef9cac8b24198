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
	"github.com/vm2image/vm2image/pkg/fswalk"
)

// LayerInfo describes a payload layer.
type LayerInfo struct {
	DiffID  string `json:"diff_id"` // sha256:<hex> of the layer tar
	Size    int64  `json:"size"`
	Entries int    `json:"entries"`
	Dropped int    `json:"dropped"` // entries under the excludes
}

// WriteLayer writes the package's payload (its data tar) as an OCI layer to w: the same entries,
// in the same order, with the same modes, owners, times and link targets, names made relative
// ("./usr/bin/x" is "usr/bin/x"), without the root entry and without what the anchored exclude
// patterns cover. Nothing of the converter or the VM enters it, so a package's layer is the same
// blob wherever the same .deb is converted. Names that climb out, whiteouts and unknown entry
// types are refused (ErrFormat).
//
// dirLinks are the base's directory symlinks (relative path -> relative target, "bin" ->
// "usr/bin" on a merged-/usr system): dpkg installs through them, so an entry under one is
// written at its target and the directory entry itself is left out, as dpkg leaves the link.
func (p *Package) WriteLayer(w io.Writer, excludes []string, dirLinks map[string]string) (LayerInfo, error) {
	var info LayerInfo
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	tw := tar.NewWriter(cw)
	tr := tar.NewReader(p.Data)
	// Each name once: an engine refuses a layer that holds a path twice ("duplicates of file
	// paths not supported"), and a .deb that ships lib/x and usr/lib/x lands both at usr/lib/x
	// through a merged-/usr base's links. A directory seen again is left out (the first one
	// stays); anything else seen twice is an error, and the package goes whole into the
	// configuration layer.
	seen := map[string]bool{} // name -> a directory
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("%w: %s data: %v", ErrFormat, p.Name, err)
		}
		name, err := archive.SafeName(hdr.Name)
		if err != nil {
			return info, fmt.Errorf("%w: %s: %v", ErrFormat, p.Name, err)
		}
		if name == "." {
			continue
		}
		if _, isLink := dirLinks[name]; isLink && hdr.Typeflag == tar.TypeDir {
			continue
		}
		name = throughLinks(name, dirLinks)
		if archive.IsWhiteout(name) {
			return info, fmt.Errorf("%w: %s ships %q, a whiteout name", ErrFormat, p.Name, name)
		}
		if excluded(excludes, name) {
			info.Dropped++
			continue
		}
		out, err := payloadHeader(hdr, name)
		if err != nil {
			return info, fmt.Errorf("%w: %s: %v", ErrFormat, p.Name, err)
		}
		if out.Typeflag == tar.TypeLink {
			out.Linkname = throughLinks(out.Linkname, dirLinks)
		}
		if out.Typeflag == tar.TypeLink && excluded(excludes, out.Linkname) {
			return info, fmt.Errorf("%s: %q is a hard link to %q, which the excludes leave out", p.Name, name, out.Linkname)
		}
		key := strings.TrimSuffix(out.Name, "/")
		if dir, dup := seen[key]; dup {
			if dir && out.Typeflag == tar.TypeDir {
				continue
			}
			return info, fmt.Errorf("%w: %s ships %q twice (through the base's directory links)", ErrDuplicate, p.Name, key)
		}
		seen[key] = out.Typeflag == tar.TypeDir
		if err := tw.WriteHeader(out); err != nil {
			return info, err
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return info, fmt.Errorf("%w: %s: %s: %v", ErrFormat, p.Name, name, err)
			}
		}
		info.Entries++
	}
	if err := tw.Close(); err != nil {
		return info, err
	}
	info.DiffID, info.Size = "sha256:"+hex.EncodeToString(h.Sum(nil)), cw.n
	return info, nil
}

// payloadHeader is hdr as a layer entry: only what a layer keeps, nothing of the archive's
// own format choices (the writer picks the format from the fields).
func payloadHeader(hdr *tar.Header, name string) (*tar.Header, error) {
	out := &tar.Header{Name: name, Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, Uname: hdr.Uname, Gname: hdr.Gname,
		ModTime: hdr.ModTime, Size: hdr.Size}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
		out.Typeflag = tar.TypeReg
	case tar.TypeDir:
		out.Typeflag, out.Name, out.Size = tar.TypeDir, name+"/", 0
	case tar.TypeSymlink:
		out.Typeflag, out.Linkname, out.Size = tar.TypeSymlink, hdr.Linkname, 0
	case tar.TypeLink:
		target, err := archive.SafeName(hdr.Linkname)
		if err != nil || target == "." {
			return nil, fmt.Errorf("hard link %q to %q", name, hdr.Linkname)
		}
		out.Typeflag, out.Linkname, out.Size = tar.TypeLink, target, 0
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		out.Typeflag, out.Devmajor, out.Devminor, out.Size = hdr.Typeflag, hdr.Devmajor, hdr.Devminor, 0
	default:
		return nil, fmt.Errorf("entry %q of type %q", name, hdr.Typeflag)
	}
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, archive.PAXXattrPrefix) {
			if out.PAXRecords == nil {
				out.PAXRecords = map[string]string{}
			}
			out.PAXRecords[k] = v
		}
	}
	return out, nil
}

// throughLinks rewrites name's parents through the directory links (the longest first, again
// until none applies, at most a few times: links to links).
func throughLinks(name string, dirLinks map[string]string) string {
	for range 8 {
		dir, changed := name, false
		for {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
			if target, ok := dirLinks[dir]; ok {
				name, changed = target+name[len(dir):], true
				break
			}
		}
		if !changed {
			return name
		}
	}
	return name
}

func excluded(patterns []string, name string) bool {
	for _, pat := range patterns {
		if fswalk.Match(pat, name) {
			return true
		}
	}
	return false
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
