package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func header(t FrameType, id, n uint32) []byte {
	b := make([]byte, headerSize)
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:], id)
	binary.BigEndian.PutUint32(b[5:], n)
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xA5}, MaxPayload)
	frames := []Frame{
		{Type: FrameRequest, ID: 1, Payload: []byte(`{"op":"info"}`)},
		{Type: FrameData, ID: 0xFFFFFFFF, Payload: big[:maxDataFrame]},
		{Type: FrameData, ID: 7, Payload: big},
		{Type: FrameEnd, ID: 2, Payload: encodeStatus(ErrNotFound, nil)},
		{Type: FrameCancel, ID: 3},
		{Type: FrameAuth, Payload: make([]byte, proofSize)},
		{Type: FrameAuthOK, Payload: make([]byte, proofSize)},
		{Type: FrameRefuse, Payload: encodeStatus(ErrAuth, nil)},
	}
	var wire bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&wire, f); err != nil {
			t.Fatalf("WriteFrame(%v): %v", f.Type, err)
		}
	}
	r := iotest.HalfReader(&wire) // short reads must not matter
	buf := make([]byte, 1024)
	for _, want := range frames {
		got, err := ReadFrame(r, buf)
		if err != nil {
			t.Fatalf("ReadFrame: %v", err)
		}
		if got.Type != want.Type || got.ID != want.ID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("got %v/%d/%d bytes, want %v/%d/%d bytes", got.Type, got.ID, len(got.Payload),
				want.Type, want.ID, len(want.Payload))
		}
		if len(got.Payload) > 0 && len(got.Payload) <= len(buf) && &got.Payload[0] != &buf[0] {
			t.Errorf("%v frame of %d bytes did not reuse the buffer", got.Type, len(got.Payload))
		}
	}
	if _, err := ReadFrame(r, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: got %v, want io.EOF", err)
	}
}

func TestReadFrameOversized(t *testing.T) {
	for _, n := range []uint32{MaxPayload + 1, 1 << 31, 0xFFFFFFFF} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			_, err := ReadFrame(bytes.NewReader(header(FrameData, 1, n)), nil)
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("length %d: got %v, want ErrFrameTooLarge", n, err)
			}
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
			t.Errorf("length %d: refusing allocated %d bytes", n, d)
		}
	}
	// The limit itself is fine.
	in := append(header(FrameData, 1, MaxPayload), make([]byte, MaxPayload)...)
	if _, err := ReadFrame(bytes.NewReader(in), nil); err != nil {
		t.Fatalf("frame of MaxPayload bytes: %v", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	full := append(header(FrameData, 9, 10), "0123456789"...)
	for _, n := range []int{1, headerSize - 1, headerSize, headerSize + 5} {
		_, err := ReadFrame(bytes.NewReader(full[:n]), nil)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%d of %d bytes: got %v, want io.ErrUnexpectedEOF", n, len(full), err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader(nil), nil); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("no bytes: got %v, want io.EOF", err)
	}
	errBoom := errors.New("boom")
	if _, err := ReadFrame(iotest.ErrReader(errBoom), nil); !errors.Is(err, errBoom) {
		t.Errorf("reader error: got %v", err)
	}
}

func TestReadFrameUnknownType(t *testing.T) {
	for _, typ := range []uint8{0, uint8(frameTypeLimit), 0x7F, 0xFF} {
		_, err := ReadFrame(bytes.NewReader(header(FrameType(typ), 1, 0)), nil)
		if !errors.Is(err, ErrUnknownFrame) {
			t.Errorf("type %d: got %v, want ErrUnknownFrame", typ, err)
		}
	}
}

func TestWriteFrameRefuses(t *testing.T) {
	if err := WriteFrame(io.Discard, Frame{Type: 0}); !errors.Is(err, ErrUnknownFrame) {
		t.Errorf("type 0: got %v", err)
	}
	if err := WriteFrame(io.Discard, Frame{Type: FrameData, Payload: make([]byte, MaxPayload+1)}); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized: got %v", err)
	}
	errBoom := errors.New("boom")
	for _, n := range []int{10, 100 << 10} {
		if err := WriteFrame(failWriter{errBoom}, Frame{Type: FrameData, Payload: make([]byte, n)}); !errors.Is(err, errBoom) {
			t.Errorf("%d bytes to a failing writer: got %v", n, err)
		}
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestFrameTypeString(t *testing.T) {
	if s := FrameData.String(); s != "data" {
		t.Errorf("FrameData: %q", s)
	}
	if s := FrameType(200).String(); s != "frame-type(200)" {
		t.Errorf("200: %q", s)
	}
}
