package fsmeta

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleEntries() []Entry {
	return []Entry{
		{Path: ".", Type: TypeDir, Mode: 0755, MTime: 1700000000123456789},
		{Path: "etc/passwd", Type: TypeRegular, Mode: 0644, Size: 1234, Nlink: 1, Dev: 2049, Ino: 77,
			Digest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{Path: "usr/bin/ping", Type: TypeRegular, Mode: 04755, UID: 0, GID: 0, Size: 9,
			Xattrs: map[string][]byte{"security.capability": {1, 0, 0, 2, 0, 32}, "user.a": nil}},
		{Path: "bin", Type: TypeSymlink, Mode: 0777, Target: "usr/bin", Size: 7},
		{Path: "dev/null", Type: TypeCharDev, Mode: 0666, DevMajor: 1, DevMinor: 3},
		{Path: "name with\nnewline and \xff\xfe bytes", Type: TypeFIFO, Mode: 0600, UID: 1000, GID: 1000},
		{Path: "a/b", Type: TypeRegular, Mode: 0644, MTime: -5, Nlink: 3, Ino: 1 << 60},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	want := sampleEntries()
	for i := range want {
		if err := w.Write(&want[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	var got []Entry
	for {
		e, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	// An empty xattr value decodes as an empty, non-nil slice.
	want[2].Xattrs["user.a"] = []byte{}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

func TestCodecTruncated(t *testing.T) {
	e := sampleEntries()[2]
	b := AppendEntry(nil, &e)
	for i := 0; i < len(b); i++ {
		if _, err := DecodeEntry(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix %d: got %v, want ErrCorrupt", i, err)
		}
	}
	var buf bytes.Buffer
	_ = NewWriter(&buf).Write(&e)
	_, err := NewReader(bytes.NewReader(buf.Bytes()[:buf.Len()-1])).Read()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated stream: got %v", err)
	}
}

func TestCodecRejectsHugeLength(t *testing.T) {
	_, err := NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})).Read()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(AppendEntry(nil, &e))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		again, err := DecodeEntry(AppendEntry(nil, &e))
		if err != nil {
			t.Fatalf("re-decoding a decoded entry: %v", err)
		}
		if d := cmp.Diff(e, again); d != "" {
			t.Fatalf("re-encoding changed the entry:\n%s", d)
		}
	})
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range sampleEntries() {
		_ = w.Write(&e)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for i := 0; i < 1000; i++ {
			if _, err := r.Read(); err != nil {
				return
			}
		}
	})
}
