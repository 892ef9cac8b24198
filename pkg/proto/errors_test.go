package proto

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCodeTable(t *testing.T) {
	seen := map[Code]bool{}
	for _, e := range codeTable {
		if seen[e.code] {
			t.Errorf("code %d twice in the table", e.code)
		}
		seen[e.code] = true
		wrapped := fmt.Errorf("doing something: %w", e.err)
		if got := CodeOf(wrapped); got != e.code {
			t.Errorf("CodeOf(%v) = %v, want %v", wrapped, got, e.code)
		}
		// Through the wire and back.
		status, _, bad := decodeStatus(encodeStatus(wrapped, nil))
		if bad != nil {
			t.Fatal(bad)
		}
		if !errors.Is(status, e.err) {
			t.Errorf("%v: decoded %v does not match its sentinel", e.code, status)
		}
		if status.Error() != wrapped.Error() {
			t.Errorf("message %q, want %q", status.Error(), wrapped.Error())
		}
		for _, other := range codeTable {
			if other.code != e.code && errors.Is(status, other.err) {
				t.Errorf("%v matches %v too", e.code, other.err)
			}
		}
	}
}

func TestCodeOf(t *testing.T) {
	_, notExist := os.Open(filepath.Join(t.TempDir(), "missing"))
	tests := []struct {
		err  error
		want Code
	}{
		{nil, CodeOK},
		{notExist, CodeNotFound},
		{fmt.Errorf("opening: %w", fs.ErrPermission), CodePermission},
		{fmt.Errorf("walking: %w", context.Canceled), CodeCanceled},
		{errors.New("disk on fire"), CodeInternal},
		{context.DeadlineExceeded, CodeInternal},
		{&Error{Code: CodeOutsideRoot, Msg: "x"}, CodeOutsideRoot},
		{fmt.Errorf("remote: %w", &Error{Code: 999}), Code(999)},
		{&Error{Code: CodeOK}, CodeInternal},
		{ErrFrameTooLarge, CodeInternal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestStatusEncoding(t *testing.T) {
	status, trailer, bad := decodeStatus(encodeStatus(nil, []byte("trail")))
	if bad != nil || status != nil || string(trailer) != "trail" {
		t.Fatalf("OK status: %v %q %v", status, trailer, bad)
	}
	long := errors.New(strings.Repeat("é", maxMessage))
	status, _, bad = decodeStatus(encodeStatus(long, nil))
	if bad != nil || len(status.Error()) > maxMessage || CodeOf(status) != CodeInternal {
		t.Fatalf("long message: %d bytes, %v", len(status.Error()), bad)
	}
	unknown := &Error{Code: 4242}
	status, _, _ = decodeStatus(encodeStatus(unknown, nil))
	var pe *Error
	if !errors.As(status, &pe) || pe.Code != 4242 || pe.Error() != "code 4242" {
		t.Fatalf("unknown code: %#v", status)
	}
	if !errors.Is(status, &Error{Code: 4242}) || errors.Is(status, ErrNotFound) {
		t.Error("unknown code matches wrongly")
	}
	for _, p := range [][]byte{nil, {0}, {0, 1, 0}, {0, 1, 0, 9, 'a'}} {
		if _, _, bad := decodeStatus(p); bad == nil {
			t.Errorf("payload %v decoded", p)
		}
	}
}

// TestStatusMessageIsPrintable: a hostile agent's message cannot carry terminal escapes.
func TestStatusMessageIsPrintable(t *testing.T) {
	status, _, bad := decodeStatus(encodeStatus(errors.New("\x1b]0;pwned\x07bad\r\x1b[2Kgone \xff"), nil))
	if bad != nil {
		t.Fatal(bad)
	}
	if m := status.Error(); strings.ContainsAny(m, "\x1b\x07\r") || !strings.Contains(m, "bad") {
		t.Errorf("message %q", m)
	}
}
