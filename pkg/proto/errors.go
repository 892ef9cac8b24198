package proto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode"
)

// Code is a status on the wire: the End frame of every call and the Refuse frame of a handshake
// carry one.
type Code uint16

// Status codes. New codes are only ever appended; a peer that sees a code it does not know keeps
// it in Error.Code and treats it as an internal error.
const (
	CodeOK Code = iota
	CodeUnknownOp
	CodeBadRequest
	CodeNotFound
	CodePermission
	CodeOutsideRoot
	CodeUnavailable
	CodeCanceled
	CodeInternal
	CodeAuth
	CodeVersion
	CodeTransport
)

// Sentinels. Those with a code travel across the wire: a handler returns (or wraps) one, and the
// client's error satisfies errors.Is with the same sentinel.
var (
	ErrUnknownOp   = errors.New("unknown operation")
	ErrBadRequest  = errors.New("bad request")
	ErrNotFound    = errors.New("not found")
	ErrPermission  = errors.New("permission denied")
	ErrOutsideRoot = errors.New("path outside root")
	ErrUnavailable = errors.New("unavailable")
	ErrCanceled    = errors.New("request canceled")
	ErrAuth        = errors.New("authentication failed")
	ErrVersion     = errors.New("protocol version mismatch")
	ErrTransport   = errors.New("transport mismatch (TLS or plaintext)")

	ErrFingerprint = errors.New("agent fingerprint mismatch")
	ErrWeakToken   = errors.New("token too weak")
	ErrTooLarge    = errors.New("answer too large")

	ErrFrameTooLarge = errors.New("frame too large")
	ErrUnknownFrame  = errors.New("unknown frame type")
	ErrClosed        = errors.New("connection closed")
)

// codeTable is the one place where sentinels and wire codes meet.
var codeTable = []struct {
	code Code
	err  error
}{
	{CodeUnknownOp, ErrUnknownOp},
	{CodeBadRequest, ErrBadRequest},
	{CodeNotFound, ErrNotFound},
	{CodePermission, ErrPermission},
	{CodeOutsideRoot, ErrOutsideRoot},
	{CodeUnavailable, ErrUnavailable},
	{CodeCanceled, ErrCanceled},
	{CodeAuth, ErrAuth},
	{CodeVersion, ErrVersion},
	{CodeTransport, ErrTransport},
}

func (c Code) sentinel() error {
	for _, e := range codeTable {
		if e.code == c {
			return e.err
		}
	}
	return nil
}

func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeInternal:
		return "internal error"
	}
	if err := c.sentinel(); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Error is a coded error received from the other side.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return e.Code.String()
}

// Is reports whether target is the sentinel of e's code, or an *Error with the same code.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t.Code == e.Code
	}
	s := e.Code.sentinel()
	return s != nil && s == target
}

// CodeOf maps an error to its wire code: a coded *Error keeps its code, the sentinels map through
// the table, fs.ErrNotExist, fs.ErrPermission and context.Canceled to NotFound, Permission and
// Canceled; anything else is Internal. A nil error is OK.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var pe *Error
	if errors.As(err, &pe) && pe.Code != CodeOK {
		return pe.Code
	}
	for _, e := range codeTable {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return CodeNotFound
	case errors.Is(err, fs.ErrPermission):
		return CodePermission
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeInternal
}

// maxMessage bounds the message of a status on the wire.
const maxMessage = 4 << 10

// encodeStatus builds the payload of an End or Refuse frame:
// code(2) + message length(2) + message + trailer.
func encodeStatus(err error, trailer []byte) []byte {
	code, msg := CodeOf(err), ""
	if err != nil {
		msg = err.Error()
	}
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage-3], "") + "..."
	}
	b := make([]byte, 4, 4+len(msg)+len(trailer))
	binary.BigEndian.PutUint16(b[0:2], uint16(code))
	binary.BigEndian.PutUint16(b[2:4], uint16(len(msg)))
	b = append(b, msg...)
	return append(b, trailer...)
}

// decodeStatus parses a status payload. The returned error is nil for CodeOK and an *Error
// otherwise; bad is set when the payload is malformed.
func decodeStatus(p []byte) (status error, trailer []byte, bad error) {
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("decoding status: %d bytes, want at least 4", len(p))
	}
	code := Code(binary.BigEndian.Uint16(p[0:2]))
	n := int(binary.BigEndian.Uint16(p[2:4]))
	if n > len(p)-4 {
		return nil, nil, fmt.Errorf("decoding status: message of %d bytes overruns the frame", n)
	}
	trailer = p[4+n:]
	if code == CodeOK {
		return nil, trailer, nil
	}
	return &Error{Code: code, Msg: printable(string(p[4 : 4+n]))}, trailer, nil
}

// printable makes a peer's message safe to print on a terminal: invalid UTF-8 and control
// characters (escape sequences, carriage returns) become U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || unicode.IsPrint(r) {
			return r
		}
		return '\uFFFD'
	}, strings.ToValidUTF8(s, "\uFFFD"))
}
