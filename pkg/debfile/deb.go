package debfile

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrFormat marks a file that is not a well-formed .deb.
var ErrFormat = errors.New("not a Debian binary package")

// ErrDuplicate marks a package whose payload would hold one path twice in a layer.
var ErrDuplicate = errors.New("a path twice in the payload")

const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
	// maxControl bounds the control member and the control file in it.
	maxControl = 4 << 20
)

// member is one ar member: its name and a reader of exactly its bytes.
type member struct {
	name string
	size int64
	r    io.Reader
}

// Reader walks a .deb's members in order.
type Reader struct {
	br   *bufio.Reader
	left int64 // unread bytes of the current member, and its padding
}

// NewReader starts reading a .deb.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return nil, fmt.Errorf("%w: no ar signature", ErrFormat)
	}
	return &Reader{br: br}, nil
}

func (d *Reader) next() (*member, error) {
	if d.left > 0 {
		if _, err := io.CopyN(io.Discard, d.br, d.left); err != nil {
			return nil, fmt.Errorf("%w: truncated member: %v", ErrFormat, err)
		}
	}
	hdr := make([]byte, arHeaderLen)
	if _, err := io.ReadFull(d.br, hdr); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: truncated member header", ErrFormat)
	}
	if string(hdr[58:60]) != "`\n" {
		return nil, fmt.Errorf("%w: bad member header", ErrFormat)
	}
	name := strings.TrimSuffix(strings.TrimRight(string(hdr[0:16]), " "), "/")
	size, err := strconv.ParseInt(strings.TrimRight(string(hdr[48:58]), " "), 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("%w: member %q: bad size", ErrFormat, name)
	}
	d.left = size + size%2 // members are padded to even offsets
	return &member{name: name, size: size, r: &countedReader{r: io.LimitReader(d.br, size), left: &d.left}}, nil
}

type countedReader struct {
	r    io.Reader
	left *int64
}

func (c *countedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.left -= int64(n)
	return n, err
}

// Package is what a .deb says of itself, and its data tar.
type Package struct {
	Name, Version, Arch string
	// Data reads the uncompressed data tar: the files the package ships. It is valid until the
	// next read of the underlying reader.
	Data io.Reader
}

// Open reads a .deb up to its data member: the control fields (Package, Version, Architecture),
// then returns a reader of the data tar, decompressed.
func Open(r io.Reader) (*Package, error) {
	d, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	m, err := d.next()
	if err != nil {
		return nil, fmt.Errorf("%w: no debian-binary member", ErrFormat)
	}
	if m.name != "debian-binary" {
		return nil, fmt.Errorf("%w: first member is %q, not debian-binary", ErrFormat, m.name)
	}
	v, _ := io.ReadAll(io.LimitReader(m.r, 16))
	if !strings.HasPrefix(string(v), "2.") {
		return nil, fmt.Errorf("%w: format version %q", ErrFormat, strings.TrimSpace(string(v)))
	}
	var p Package
	for {
		m, err := d.next()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: no data member", ErrFormat)
		}
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(m.name, "control.tar"):
			if m.size > maxControl {
				return nil, fmt.Errorf("%w: control member of %d bytes", ErrFormat, m.size)
			}
			if err := p.readControl(m); err != nil {
				return nil, err
			}
		case strings.HasPrefix(m.name, "data.tar"):
			if p.Name == "" {
				return nil, fmt.Errorf("%w: data before control", ErrFormat)
			}
			p.Data, err = decompress(m.name, m.r)
			if err != nil {
				return nil, err
			}
			return &p, nil
		}
	}
}

func (p *Package) readControl(m *member) error {
	zr, err := decompress(m.name, m.r)
	if err != nil {
		return err
	}
	tr := newTarReader(io.LimitReader(zr, maxControl))
	for {
		name, body, err := tr.next()
		if err == io.EOF {
			return fmt.Errorf("%w: no control file", ErrFormat)
		}
		if err != nil {
			return fmt.Errorf("%w: control member: %v", ErrFormat, err)
		}
		if strings.TrimPrefix(name, "./") != "control" {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(body, maxControl))
		if err != nil {
			return fmt.Errorf("%w: control file: %v", ErrFormat, err)
		}
		fields := parseFields(b)
		p.Name, p.Version, p.Arch = fields["Package"], fields["Version"], fields["Architecture"]
		if p.Name == "" || p.Version == "" || p.Arch == "" {
			return fmt.Errorf("%w: control file without Package, Version or Architecture", ErrFormat)
		}
		return nil
	}
}

// parseFields reads the first stanza's simple fields (continuation lines are skipped).
func parseFields(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok {
			out[string(k)] = strings.TrimSpace(string(v))
		}
	}
	return out
}

// Decompress reads r, named name, through the decompressor its suffix names (.gz, .xz, .zst,
// .bz2; .tar as is), each bounded as for a .deb's members: xz dictionaries at most 64 MiB,
// zstd windows at most 256 MiB. Errors wrap ErrFormat. Package formats other than .deb (pacman,
// rpm payloads) use it so that one implementation bounds them all.
func Decompress(name string, r io.Reader) (io.Reader, error) { return decompress(name, r) }

func decompress(name string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(name, ".bz2"):
		return bzip2.NewReader(r), nil
	case strings.HasSuffix(name, ".gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		return zr, nil
	case strings.HasSuffix(name, ".xz"):
		// One stream, each block's dictionary bounded before the decoder sees its header.
		zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(newXZGuard(r))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		return zr, nil
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		return zr.IOReadCloser(), nil
	case strings.HasSuffix(name, ".tar"):
		return r, nil
	}
	return nil, fmt.Errorf("%w: member %q: unknown compression", ErrFormat, name)
}
