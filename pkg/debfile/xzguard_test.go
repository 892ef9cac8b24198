package debfile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// xzCLI compresses b with the xz command and its flags.
func xzCLI(t *testing.T, b []byte, flags ...string) []byte {
	t.Helper()
	cmd := exec.Command("xz", append([]string{"-c"}, flags...)...)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v: %v", flags, err)
	}
	return out
}

// arDeb assembles a .deb from its members, as dpkg-deb lays them out.
func arDeb(members ...[2][]byte) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range members {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", string(m[0]), 0, 0, 0, "100644", len(m[1]))
		b.Write(m[1])
		if len(m[1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func xzTarOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	return b.Bytes()
}

// TestAttackXZHugeDictionary: a hostile repository's .deb whose data.tar.xz (a few KiB) declares
// a 1.5 GiB LZMA2 dictionary: the xz decoder would allocate it all and fill it as it decodes.
// Reading the payload must fail, naming the dictionary, having allocated little.
func TestAttackXZHugeDictionary(t *testing.T) {
	testenv.RequireCommands(t, "xz")
	var ctl bytes.Buffer
	zw := gzip.NewWriter(&ctl)
	zw.Write(xzTarOf(t, map[string][]byte{"./control": []byte("Package: big\nVersion: 1\nArchitecture: all\n")}))
	zw.Close()
	data := xzCLI(t, xzTarOf(t, map[string][]byte{"./usr/share/zeros": make([]byte, 8<<20)}), "--lzma2=preset=0,dict=1536MiB")
	deb := arDeb([2][]byte{[]byte("debian-binary"), []byte("2.0\n")}, [2][]byte{[]byte("control.tar.gz"), ctl.Bytes()},
		[2][]byte{[]byte("data.tar.xz"), data})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := Open(bytes.NewReader(deb))
	if err == nil {
		_, err = p.WriteLayer(io.Discard, nil, nil)
	}
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) || !strings.Contains(fmt.Sprint(err), "dictionary") {
		t.Errorf("a %d-byte data member with a 1.5 GiB dictionary: want an error naming the dictionary, got %v", len(data), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<20 {
		t.Errorf("reading it allocated %d MiB", alloc>>20)
	}
}

// TestXZGuardPassesRealStreams: what xz writes (one or many blocks, every check type, stored
// chunks of random bytes, dictionaries up to 64 MiB) decodes through the guard unchanged.
func TestXZGuardPassesRealStreams(t *testing.T) {
	testenv.RequireCommands(t, "xz")
	random := make([]byte, 300<<10)
	rand.Read(random)
	text := bytes.Repeat([]byte("package payload line\n"), 50000)
	in := append(append(append([]byte(nil), text...), random...), text...)
	for _, flags := range [][]string{
		nil, {"-9"}, {"-0"}, {"--check=none"}, {"--check=crc32"}, {"--check=sha256"},
		{"-T2", "--block-size=65536"}, {"--lzma2=dict=64MiB"}, {"--block-size=4099", "--check=crc32"},
	} {
		z := xzCLI(t, in, flags...)
		r, err := decompress("data.tar.xz", bytes.NewReader(z))
		if err != nil {
			t.Fatalf("xz %v: %v", flags, err)
		}
		out, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("xz %v: %d bytes back of %d, %v", flags, len(out), len(in), err)
		}
	}
}

// FuzzXZGuard: any bytes through the guard and the decoder end in data or an error, bounded.
func FuzzXZGuard(f *testing.F) {
	for _, s := range []string{
		"fd377a585a000004e6d6b4460200210116000000742fe5a301000568656c6c6f0a000000a56097f194f6fde000011e06c12fa41d1fb6f37d010000000004595a",
		"fd377a585a000004e6d6b44602002101250000003b787b4101000568656c6c6f0a000000a56097f194f6fde000011e06c12fa41d1fb6f37d010000000004595a",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decompress("data.tar.xz", bytes.NewReader(b))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r, 16<<20))
	})
}
