package proto

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenStrength(t *testing.T) {
	gen, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tok  string
		weak bool
	}{
		{"", true},
		{"secret", true},
		{"0123456789abcdef", true}, // 64 bits of hex
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true}, // long but one character
		{"abababababababababababababababababababab", true},
		{"0123456789abcdef0123456789abcdef", false}, // 32 hex digits: 128 bits
		{"correct horse battery staple", false},
		{"q3Zc0K8vX9mR2tL5yW7pN4", false}, // 22 base62 characters
		{string(gen), false},
	} {
		err := CheckToken([]byte(tc.tok))
		if tc.weak != (err != nil) {
			t.Errorf("%q (%.0f bits): %v", tc.tok, TokenBits([]byte(tc.tok)), err)
		}
		if err != nil && (!errors.Is(err, ErrWeakToken) || !strings.Contains(err.Error(), "head -c 32 /dev/urandom | base64")) {
			t.Errorf("%q: the refusal does not say how to make a token: %v", tc.tok, err)
		}
	}
	if b := TokenBits(gen); b < 256 {
		t.Errorf("generated token estimated at %.0f bits, want >= 256", b)
	}
}

func TestReadTokenFileWeak(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	os.WriteFile(p, []byte("hunter2\n"), 0o600)
	if _, err := ReadTokenFile(p); !errors.Is(err, ErrWeakToken) || !strings.Contains(err.Error(), p) {
		t.Errorf("weak token file: %v", err)
	}
	os.WriteFile(p, []byte("  \n"), 0o600)
	if _, err := ReadTokenFile(p); err == nil || !strings.Contains(err.Error(), "urandom") {
		t.Errorf("empty token file: %v", err)
	}
}

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"SHA256:" + hex:                                "SHA256:" + hex,
		"sha256:" + strings.ToUpper(hex):               "SHA256:" + hex,
		" SHA256:" + strings.Repeat("ab:", 31) + "ab ": "SHA256:" + hex,
		"SHA256:" + hex[:62]:                           "",
		hex:                                            "",
		"MD5:" + hex:                                   "",
	} {
		got, err := ParseFingerprint(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}
