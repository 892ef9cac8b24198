package rpmfile

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/vm2image/vm2image/pkg/debfile"
)

// cpioEntry is one entry of a hand-made cpio archive.
type cpioEntry struct {
	name       string
	mode       uint32
	ino, nlink uint32
	size       uint32 // declared; data may be shorter
	data       string
}

func cpioOf(entries ...cpioEntry) []byte {
	var b bytes.Buffer
	for _, e := range append(entries, cpioEntry{name: cpioTrailer}) {
		size := e.size
		if size == 0 {
			size = uint32(len(e.data))
		}
		nlink := max(e.nlink, 1)
		fmt.Fprintf(&b, "%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x", cpioMagic,
			e.ino, e.mode, 0, 0, nlink, 1700000000, size, 0, 0, 0, 0, len(e.name)+1, 0)
		b.WriteString(e.name + "\x00")
		b.Write(make([]byte, pad4(uint64(cpioHeaderSize+len(e.name)+1))))
		b.WriteString(e.data)
		b.Write(make([]byte, pad4(uint64(len(e.data)))))
	}
	return b.Bytes()
}

// headerOf is a header structure holding the string tags (and EPOCH when epoch >= 0); nindex
// and store, when not 0, replace the declared counts.
func headerOf(tags map[uint32]string, nindex, store uint32) []byte {
	var index, data bytes.Buffer
	n := uint32(0)
	for _, tag := range []uint32{tagName, tagVersion, tagRelease, tagArch, tagPayloadFormat, tagPayloadCompressor} {
		v, ok := tags[tag]
		if !ok {
			continue
		}
		binary.Write(&index, binary.BigEndian, [4]uint32{tag, typeString, uint32(data.Len()), 1})
		data.WriteString(v + "\x00")
		n++
	}
	if nindex == 0 {
		nindex = n
	}
	if store == 0 {
		store = uint32(data.Len())
	}
	var b bytes.Buffer
	b.Write(headerMagic)
	b.Write(make([]byte, 4))
	binary.Write(&b, binary.BigEndian, [2]uint32{nindex, store})
	b.Write(index.Bytes())
	b.Write(data.Bytes())
	return b.Bytes()
}

// rpmOf is an .rpm of name-1-1.x86_64 whose gzip payload is cpio.
func rpmOf(name string, cpio []byte) []byte {
	var b bytes.Buffer
	lead := make([]byte, leadSize)
	copy(lead, leadMagic)
	lead[4] = 3
	b.Write(lead)
	sig := headerOf(map[uint32]string{tagName: "sig"}, 0, 0) // any tags: skipped
	b.Write(sig)
	b.Write(make([]byte, pad8(len(sig))))
	b.Write(headerOf(map[uint32]string{tagName: name, tagVersion: "1", tagRelease: "1", tagArch: "x86_64",
		tagPayloadFormat: "cpio", tagPayloadCompressor: "gzip"}, 0, 0))
	zw := gzip.NewWriter(&b)
	zw.Write(cpio)
	zw.Close()
	return b.Bytes()
}

func pad8(n int) int { return (8 - n%8) % 8 }

// TestAttackHostilePayload: a hostile repository's packages, written as an attacker would: a
// payload climbing out of the root, an absolute symlink and a file written through it, a
// whiteout, a socket, a hard link group whose data never comes. Each is refused and no layer
// comes of it.
func TestAttackHostilePayload(t *testing.T) {
	for name, c := range map[string]struct {
		entries []cpioEntry
		want    error
	}{
		"climbs":   {[]cpioEntry{{name: "./../../../etc/cron.d/evil", mode: sIFREG | 0o644, data: "* * * * * root sh"}}, debfile.ErrPayload},
		"absolute": {[]cpioEntry{{name: "/etc/cron.d/evil", mode: sIFREG | 0o644, data: "x"}}, nil},
		"through an absolute symlink": {[]cpioEntry{
			{name: "./usr/lib/evil", mode: sIFLNK | 0o777, data: "/etc"},
			{name: "./usr/lib/evil/passwd", mode: sIFREG | 0o644, data: "root::0:0::/:/bin/sh\n"}}, debfile.ErrPayload},
		"whiteout": {[]cpioEntry{{name: "./etc/.wh.passwd", mode: sIFREG | 0o644}}, debfile.ErrPayload},
		"socket":   {[]cpioEntry{{name: "./run/s", mode: 0o140000 | 0o644}}, ErrFormat},
		"links without data": {[]cpioEntry{
			{name: "./usr/a", mode: sIFREG | 0o644, ino: 7, nlink: 3},
			{name: "./usr/b", mode: sIFREG | 0o644, ino: 7, nlink: 3}}, ErrFormat},
	} {
		p, err := Open(bytes.NewReader(rpmOf("evil", cpioOf(c.entries...))))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out bytes.Buffer
		_, err = p.WriteLayer(&out, nil, nil)
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// TestAttackHugeDeclaredSizes: a header declaring 64 MiB of data and 65535 tags with a few bytes
// behind it, a cpio entry of 4 GiB with a few bytes, a symlink target of 4 GiB: each ends in an
// error, having allocated little.
func TestAttackHugeDeclaredSizes(t *testing.T) {
	lead := make([]byte, leadSize)
	copy(lead, leadMagic)
	sig := headerOf(map[uint32]string{tagName: "sig"}, 0, 0)
	sig = append(sig, make([]byte, pad8(len(sig)))...)
	huge := append(append(append([]byte(nil), lead...), sig...), headerOf(map[uint32]string{tagName: "big"}, maxIndex, maxStore)...)
	over := append(append(append([]byte(nil), lead...), sig...), headerOf(map[uint32]string{tagName: "big"}, 1, maxStore+1)...)
	bigFile := rpmOf("big", cpioOf(cpioEntry{name: "./usr/big", mode: sIFREG | 0o644, size: 0xffffffff, data: "short"}))
	bigLink := rpmOf("big", cpioOf(cpioEntry{name: "./usr/l", mode: sIFLNK | 0o777, size: 0xffffffff, data: "short"}))
	for name, b := range map[string][]byte{"header": huge, "header over the bound": over, "file": bigFile, "symlink": bigLink} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		p, err := Open(bytes.NewReader(b))
		if err == nil {
			_, err = p.WriteLayer(io.Discard, nil, nil)
		}
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%s: reading it allocated %d MiB", name, alloc>>20)
		}
	}
}

// TestHardLinkGroups: rpm writes a hard link group's data with its last name; the layer holds
// the file once and the other names as hard links to it, and a name after the data links too.
func TestHardLinkGroups(t *testing.T) {
	p, err := Open(bytes.NewReader(rpmOf("links", cpioOf(
		cpioEntry{name: "./usr/a", mode: sIFREG | 0o644, ino: 7, nlink: 3},
		cpioEntry{name: "./usr/b", mode: sIFREG | 0o644, ino: 7, nlink: 3, data: "shared"},
		cpioEntry{name: "./usr/c", mode: sIFREG | 0o644, ino: 7, nlink: 3},
	))))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := p.WriteLayer(&out, nil, nil); err != nil {
		t.Fatal(err)
	}
	got := entries(t, &out)
	want := []string{`usr/a 0 644 0:0 ""`, "usr/a data " + sha("shared"), `usr/b 0 644 0:0 ""`, "usr/b data " + sha("shared"),
		`usr/c 0 644 0:0 ""`, "usr/c data " + sha("shared")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("entries %q\nwant %q", got, want)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add(rpmOf("a", cpioOf(cpioEntry{name: "./usr/x", mode: sIFREG | 0o644, data: "hi"},
		cpioEntry{name: "./usr/l", mode: sIFLNK | 0o777, data: "x"})))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Open(bytes.NewReader(b))
		if err != nil {
			return
		}
		if p.Name == "" || p.Version == "" || p.Arch == "" {
			t.Fatalf("accepted a package without identity: %+v", p)
		}
		_, _ = p.WriteLayer(io.Discard, nil, nil)
	})
}

// FuzzCPIO: any bytes as a payload's cpio archive end in entries or an error, bounded.
func FuzzCPIO(f *testing.F) {
	f.Add(cpioOf(cpioEntry{name: "./usr/x", mode: sIFREG | 0o644, data: "hi"},
		cpioEntry{name: "./usr/a", mode: sIFREG | 0o644, ino: 7, nlink: 2},
		cpioEntry{name: "./usr/b", mode: sIFREG | 0o644, ino: 7, nlink: 2, data: "ab"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = debfile.WritePayload(io.Discard, "fuzz", newCPIOReader(bytes.NewReader(b)), nil, nil)
	})
}
