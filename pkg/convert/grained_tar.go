package convert

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"os"
)

// concatLayers writes the entries of the payload layers ps, in turn, as one tar.
func concatLayers(w io.Writer, ps []payloadLayer) error {
	tw := tar.NewWriter(w)
	for _, p := range ps {
		if err := copyEntries(tw, p.path); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyEntries(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
