package convert

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
)

// concatLayers writes the entries of the payload layers ps, in turn, as one tar.
func concatLayers(w io.Writer, ps []payloadLayer) error {
	last, err := lastHolders(ps)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	for i, p := range ps {
		keep := func(h *tar.Header) bool {
			name := strings.TrimSuffix(h.Name, "/")
			l := last[name]
			if l.dirsOnly { // a directory many packages ship: once, where it first comes
				if written[name] {
					return false
				}
				written[name] = true
				return true
			}
			return l.index == i // anything else: the last package's, as applying them in turn gives
		}
		if err := copyEntries(tw, p.path, keep); err != nil {
			return err
		}
	}
	return tw.Close()
}

// holder says which payload holds a name last, and whether every payload holding it ships a
// directory there.
type holder struct {
	index    int
	dirsOnly bool
}

// lastHolders reads the payloads' headers: an engine refuses a layer holding a path twice
// ("duplicates of file paths not supported"), so the bundle writes each name once.
func lastHolders(ps []payloadLayer) (map[string]holder, error) {
	out := map[string]holder{}
	for i, p := range ps {
		err := copyEntries(nil, p.path, func(h *tar.Header) bool {
			name := strings.TrimSuffix(h.Name, "/")
			prev, seen := out[name]
			out[name] = holder{index: i, dirsOnly: h.Typeflag == tar.TypeDir && (!seen || prev.dirsOnly)}
			return false
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyEntries copies the entries of the layer at path that keep accepts into tw.
func copyEntries(tw *tar.Writer, path string, keep func(*tar.Header) bool) error {
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
		if !keep(h) {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
