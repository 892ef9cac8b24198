package disk

import (
	"archive/tar"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// maxOVF bounds the OVF descriptor read from an OVA.
const maxOVF = 4 << 20

// ovfEnvelope is the part of an OVF descriptor that says which files are disks.
type ovfEnvelope struct {
	Files []struct {
		ID   string `xml:"id,attr"`
		Href string `xml:"href,attr"`
	} `xml:"References>File"`
	Disks []struct {
		FileRef string `xml:"fileRef,attr"`
	} `xml:"DiskSection>Disk"`
}

// DiskHref returns the file name of the first disk an OVF descriptor lists.
func DiskHref(ovf []byte) (string, error) {
	var env ovfEnvelope
	if err := xml.Unmarshal(ovf, &env); err != nil {
		return "", fmt.Errorf("%w: reading the OVF descriptor: %v", ErrUnsupported, err)
	}
	for _, d := range env.Disks {
		for _, f := range env.Files {
			if f.ID == d.FileRef && f.Href != "" {
				return f.Href, nil
			}
		}
	}
	return "", fmt.Errorf("%w: the OVF descriptor lists no disk file", ErrNoOS)
}

// isDiskName says whether an OVA member looks like a disk image.
func isDiskName(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".vmdk", ".qcow2", ".img", ".raw", ".vhd", ".vhdx":
		return true
	}
	return false
}

// ExtractOVA copies the first disk of the OVA (a tar whose OVF descriptor comes first) to dst
// and returns its name in the archive. The disk is the OVF's first Disk; without an OVF, the
// first member named like a disk image. Member names never become host paths.
func ExtractOVA(r io.Reader, dst io.Writer) (string, error) {
	tr := tar.NewReader(r)
	want := ""
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%w: reading the OVA: %v", ErrTruncated, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Base(path.Clean("/" + h.Name))
		if strings.EqualFold(path.Ext(name), ".ovf") && want == "" {
			b, err := io.ReadAll(io.LimitReader(tr, maxOVF+1))
			if err != nil {
				return "", fmt.Errorf("%w: reading the OVF descriptor: %v", ErrTruncated, err)
			}
			if len(b) > maxOVF {
				return "", fmt.Errorf("%w: OVF descriptor over %d bytes", ErrUnsupported, maxOVF)
			}
			if want, err = DiskHref(b); err != nil {
				return "", err
			}
			continue
		}
		if (want != "" && name == path.Base(want)) || (want == "" && isDiskName(name)) {
			if isSparse(h) {
				// Holes read as zeros: a few KiB of OVA would write h.Size bytes out.
				return "", fmt.Errorf("%w: %s is a sparse member of the OVA (%d bytes, mostly not in the archive)", ErrUnsupported, name, h.Size)
			}
			n, err := io.Copy(dst, tr)
			if err != nil {
				return "", fmt.Errorf("copying %s out of the OVA: %w", name, err)
			}
			if n != h.Size {
				return "", fmt.Errorf("%w: %s cut short in the OVA", ErrTruncated, name)
			}
			return name, nil
		}
	}
	if want != "" {
		return "", fmt.Errorf("%w: the OVA lacks the disk %q its OVF names", ErrTruncated, want)
	}
	return "", fmt.Errorf("%w: no disk image in the OVA", ErrNoOS)
}

// isSparse says whether a tar member is a sparse file (GNU or PAX sparse formats), whose holes
// the reader returns as zeros that are not in the archive.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
