package debfile

import (
	"archive/tar"
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
// types are refused (ErrFormat and ErrPayload).
//
// dirLinks are the base's directory symlinks (relative path -> relative target, "bin" ->
// "usr/bin" on a merged-/usr system): dpkg installs through them, so an entry under one is
// written at its target and the directory entry itself is left out, as dpkg leaves the link.
func (p *Package) WriteLayer(w io.Writer, excludes []string, dirLinks map[string]string) (LayerInfo, error) {
	info, err := WritePayload(w, p.Name, tar.NewReader(p.Data), excludes, dirLinks)
	if errors.Is(err, ErrPayload) {
		err = fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return info, err
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
