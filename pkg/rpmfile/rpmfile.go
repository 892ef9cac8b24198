package rpmfile

import (
	"fmt"
	"io"

	"github.com/vm2image/vm2image/pkg/debfile"
)

// Package is what an RPM package says of itself (its main header), and its payload.
type Package struct {
	// Name, Version (EPOCH:VERSION-RELEASE, the epoch only when above 0) and Arch are the
	// header's.
	Name, Version, Arch string
	cpio                *cpioReader
}

// compressors are the PAYLOADCOMPRESSOR values read, as debfile.Decompress's suffixes.
var compressors = map[string]string{"gzip": ".gz", "": ".gz", "xz": ".xz", "zstd": ".zst", "bzip2": ".bz2"}

// Open reads an .rpm up to its payload: the lead, the signature header, the main header's
// identity and payload tags; then returns the package, its payload ready to read.
func Open(r io.Reader) (*Package, error) {
	if err := readLead(r); err != nil {
		return nil, err
	}
	h, err := readHeader(r, maxStore)
	if err != nil {
		return nil, err
	}
	p := &Package{}
	if p.Name, p.Version, p.Arch, err = h.identity(); err != nil {
		return nil, err
	}
	if f := h.str(tagPayloadFormat); f != "" && f != "cpio" {
		return nil, fmt.Errorf("%w: %s: payload format %q", ErrFormat, p.Name, f)
	}
	comp, ok := compressors[h.str(tagPayloadCompressor)]
	if !ok {
		return nil, fmt.Errorf("%w: %s: payload compressor %q", ErrFormat, p.Name, h.str(tagPayloadCompressor))
	}
	zr, err := debfile.Decompress("payload"+comp, r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, p.Name, err)
	}
	p.cpio = newCPIOReader(zr)
	return p, nil
}

// WriteLayer writes the package's payload as an OCI layer (debfile.WritePayload's rules: the
// same for every package format). Owners are the cpio archive's numbers, as rpmbuild wrote them
// (the header's FILEUSERNAME and FILEGROUPNAME, which rpm maps to ids on install, are not
// read): a file owned by another user than root comes out of the configuration layer with its
// installed owner. Errors wrap debfile.ErrPayload for a payload no layer may hold.
func (p *Package) WriteLayer(w io.Writer, excludes []string, dirLinks map[string]string) (debfile.LayerInfo, error) {
	return debfile.WritePayload(w, p.Name, p.cpio, excludes, dirLinks)
}
