package debfile

import (
	"archive/tar"
	"io"
)

// tarReader yields a tar's regular files.
type tarReader struct{ tr *tar.Reader }

func newTarReader(r io.Reader) *tarReader { return &tarReader{tr: tar.NewReader(r)} }

func (t *tarReader) next() (string, io.Reader, error) {
	for {
		h, err := t.tr.Next()
		if err != nil {
			return "", nil, err
		}
		if h.Typeflag == tar.TypeReg {
			return h.Name, t.tr, nil
		}
	}
}
