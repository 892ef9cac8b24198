package pacfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vm2image/vm2image/pkg/debfile"
)

// ErrFormat marks a file that is not a well-formed pacman package.
var ErrFormat = errors.New("not a pacman package")

// maxInfo bounds .PKGINFO.
const maxInfo = 1 << 20

// metadata are the top-level members of a package that are not files of the package.
var metadata = map[string]bool{".PKGINFO": true, ".BUILDINFO": true, ".MTREE": true, ".INSTALL": true, ".CHANGELOG": true}

// Package is what a pacman package says of itself (its .PKGINFO), and its payload.
type Package struct {
	Name, Version, Arch string
	tr                  *tar.Reader
}

// Suffixes are the file name endings of the package formats Open reads.
var Suffixes = []string{".pkg.tar.zst", ".pkg.tar.xz", ".pkg.tar.gz"}

// Open reads a package named file (its suffix names the compression) up to .PKGINFO, which must
// come before any file of the package (makepkg writes the metadata members first), and returns
// its pkgname, pkgver (epoch:version-release) and arch.
func Open(file string, r io.Reader) (*Package, error) {
	comp := ""
	for _, s := range Suffixes {
		if strings.HasSuffix(file, s) {
			comp = strings.TrimPrefix(s, ".pkg")
		}
	}
	if comp == "" {
		return nil, fmt.Errorf("%w: %q: unknown package file name", ErrFormat, file)
	}
	zr, err := debfile.Decompress(comp, r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	p := &Package{tr: tar.NewReader(zr)}
	for p.Name == "" {
		h, err := p.tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%w: no .PKGINFO: %v", ErrFormat, err)
		}
		switch meta := metaName(h.Name); {
		case meta == ".PKGINFO":
			if err := p.readInfo(h); err != nil {
				return nil, err
			}
		case meta == "":
			return nil, fmt.Errorf("%w: %q before .PKGINFO", ErrFormat, h.Name)
		}
	}
	return p, nil
}

// metaName is name's metadata member name (".PKGINFO"), or "" for a file of the package.
func metaName(name string) string {
	n := strings.TrimPrefix(name, "./")
	if metadata[n] {
		return n
	}
	return ""
}

func (p *Package) readInfo(h *tar.Header) error {
	if h.Typeflag != tar.TypeReg || h.Size > maxInfo {
		return fmt.Errorf("%w: .PKGINFO is not a file of at most %d bytes", ErrFormat, maxInfo)
	}
	b, err := io.ReadAll(io.LimitReader(p.tr, maxInfo))
	if err != nil {
		return fmt.Errorf("%w: .PKGINFO: %v", ErrFormat, err)
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxInfo)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		k = strings.TrimSpace(k)
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if _, seen := fields[k]; !seen { // pkgname, pkgver and arch once: the first wins
			fields[k] = strings.TrimSpace(v)
		}
	}
	p.Name, p.Version, p.Arch = fields["pkgname"], fields["pkgver"], fields["arch"]
	if p.Name == "" || p.Version == "" || p.Arch == "" {
		p.Name = ""
		return fmt.Errorf("%w: .PKGINFO without pkgname, pkgver or arch", ErrFormat)
	}
	return nil
}

// Next is the payload's next entry: the tar's entries without the metadata members.
func (p *Package) Next() (*tar.Header, error) {
	for {
		h, err := p.tr.Next()
		if err != nil {
			return nil, err
		}
		if metaName(h.Name) == "" {
			return h, nil
		}
	}
}

// Read reads the current entry's body.
func (p *Package) Read(b []byte) (int, error) { return p.tr.Read(b) }

// WriteLayer writes the package's payload as an OCI layer (debfile.WritePayload's rules: the
// same for every package format). Errors wrap debfile.ErrPayload for a payload no layer may
// hold.
func (p *Package) WriteLayer(w io.Writer, excludes []string, dirLinks map[string]string) (debfile.LayerInfo, error) {
	return debfile.WritePayload(w, p.Name, p, excludes, dirLinks)
}
