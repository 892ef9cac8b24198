package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteSparse: the file writeSparse makes has the stream's exact bytes whatever the zero
// runs (leading, trailing, shorter than a block, unaligned), and whole zero blocks take no disk.
func TestWriteSparse(t *testing.T) {
	data := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	z := func(n int) []byte { return make([]byte, n) }
	x := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	for name, c := range map[string][]byte{
		"empty":           nil,
		"all zeros":       z(10 * holeBlock),
		"zeros unaligned": z(3*holeBlock + 17),
		"leading hole":    data(z(4*holeBlock), x(5)),
		"trailing hole":   data(x(5), z(4*holeBlock)),
		"middle":          data(x(holeBlock-1), z(3*holeBlock+2), x(holeBlock+3)),
		"short zeros":     data(x(7), z(holeBlock/2), x(7)),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeSparse(f, bytes.NewReader(c)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c) {
				t.Fatalf("contents differ: %d bytes, want %d", len(got), len(c))
			}
		})
	}
	p := filepath.Join(t.TempDir(), "holes")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSparse(f, bytes.NewReader(z(256*holeBlock))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 256*holeBlock || st.Blocks*512 > holeBlock {
		t.Errorf("16 MiB of zeros: size %d, %d bytes on disk; want the size and no blocks", st.Size, st.Blocks*512)
	}
}
