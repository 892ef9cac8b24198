package proto

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// Magic opens the handshake, in both directions.
	Magic = "VM2I"
	// Version is the protocol version this package speaks. Version 2: TLS 1.3 by default, and
	// proofs bound to the TLS session.
	Version = 2
	// MaxPayload bounds a frame's payload; longer frames are refused before anything is allocated.
	MaxPayload = 1 << 20
)

const (
	headerSize   = 9        // type(1) + id(4) + length(4)
	maxDataFrame = 64 << 10 // the largest data frame a Server writes
)

// FrameType says what a frame carries.
type FrameType uint8

// Frame types. Request and Cancel go from client to server, Data and End from server to client;
// Auth, AuthOK and Refuse close the handshake.
const (
	FrameRequest FrameType = iota + 1 // a JSON Request; ID names the call
	FrameData                         // a chunk of the response to call ID
	FrameEnd                          // the end of the response to call ID: status and trailer
	FrameCancel                       // the client gives up on call ID
	FrameAuth                         // the client's proof that it holds the token
	FrameAuthOK                       // the server accepts, with its own proof
	FrameRefuse                       // the server refuses the connection: a status
	frameTypeLimit
)

var frameTypeNames = [...]string{
	FrameRequest: "request",
	FrameData:    "data",
	FrameEnd:     "end",
	FrameCancel:  "cancel",
	FrameAuth:    "auth",
	FrameAuthOK:  "auth-ok",
	FrameRefuse:  "refuse",
}

func (t FrameType) valid() bool { return t > 0 && t < frameTypeLimit }

func (t FrameType) String() string {
	if t.valid() {
		return frameTypeNames[t]
	}
	return fmt.Sprintf("frame-type(%d)", uint8(t))
}

// Frame is one unit on the wire: a header (type, call ID, payload length) and a payload.
type Frame struct {
	Type    FrameType
	ID      uint32
	Payload []byte
}

func putHeader(b []byte, t FrameType, id uint32, n int) {
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:5], id)
	binary.BigEndian.PutUint32(b[5:9], uint32(n))
}

// WriteFrame writes f to w: one Write for small frames, two (header, payload) for large ones.
func WriteFrame(w io.Writer, f Frame) error {
	if !f.Type.valid() {
		return fmt.Errorf("writing frame: type %d: %w", uint8(f.Type), ErrUnknownFrame)
	}
	if len(f.Payload) > MaxPayload {
		return fmt.Errorf("writing frame: payload of %d bytes: %w", len(f.Payload), ErrFrameTooLarge)
	}
	if len(f.Payload) <= 4<<10 {
		b := make([]byte, headerSize+len(f.Payload))
		putHeader(b, f.Type, f.ID, len(f.Payload))
		copy(b[headerSize:], f.Payload)
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("writing frame: %w", err)
		}
		return nil
	}
	var hdr [headerSize]byte
	putHeader(hdr[:], f.Type, f.ID, len(f.Payload))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("writing frame header: %w", err)
	}
	if _, err := w.Write(f.Payload); err != nil {
		return fmt.Errorf("writing frame payload: %w", err)
	}
	return nil
}

// ReadFrame reads one frame from r. The payload is read into buf when it fits (the returned
// Payload then aliases buf) and into a new slice otherwise. A length above MaxPayload fails with
// ErrFrameTooLarge and an unknown type with ErrUnknownFrame, both before the payload is read; a
// frame cut short fails with io.ErrUnexpectedEOF; a clean end between frames with io.EOF.
func ReadFrame(r io.Reader, buf []byte) (Frame, error) {
	return readFrame(r, buf, MaxPayload)
}

func readFrame(r io.Reader, buf []byte, limit int) (Frame, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, fmt.Errorf("reading frame header: %w", err)
	}
	f := Frame{Type: FrameType(hdr[0]), ID: binary.BigEndian.Uint32(hdr[1:5])}
	n := binary.BigEndian.Uint32(hdr[5:9])
	if !f.Type.valid() {
		return Frame{}, fmt.Errorf("reading frame header: type %d: %w", hdr[0], ErrUnknownFrame)
	}
	if uint64(n) > uint64(limit) {
		return Frame{}, fmt.Errorf("reading frame header: %v frame of %d bytes exceeds the limit of %d: %w",
			f.Type, n, limit, ErrFrameTooLarge)
	}
	if int(n) <= cap(buf) {
		f.Payload = buf[:n]
	} else {
		f.Payload = make([]byte, n)
	}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, fmt.Errorf("reading %v frame payload: %w", f.Type, err)
	}
	return f, nil
}
