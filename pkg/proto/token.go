package proto

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"strings"
	"unicode/utf8"
)

// MinTokenBits is the least estimated strength of a token that ReadTokenFile and CheckToken
// accept.
const MinTokenBits = 128

// TokenHowTo says how to make a good token.
const TokenHowTo = "make one with: head -c 32 /dev/urandom | base64 > token"

// ReadTokenFile reads a shared token from a file: its first line, surrounding spaces trimmed. A
// token weaker than MinTokenBits is refused (see CheckToken).
func ReadTokenFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading token file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty; %s", path, TokenHowTo)
	}
	if err := CheckToken([]byte(tok)); err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return []byte(tok), nil
}

// TokenBits estimates the strength of a token in bits, as if each character had been drawn at
// random from the character classes the token uses: length × log2(alphabet), where the alphabet
// is the sum of the sizes of the classes present (lowercase 26, uppercase 26, digits 10, other
// printable ASCII 33, anything else 128). It overestimates human-chosen tokens, so it is only a
// floor against short or plainly repetitive ones: a token with fewer than 8 distinct characters
// counts as 0 bits.
func TokenBits(tok []byte) float64 {
	var lower, upper, digit, other, high bool
	distinct := map[rune]bool{}
	s := string(tok)
	for _, r := range s {
		distinct[r] = true
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r >= 0x20 && r < 0x7f:
			other = true
		default:
			high = true
		}
	}
	if len(distinct) < 8 {
		return 0
	}
	alphabet := 0
	for _, c := range []struct {
		present bool
		size    int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}, {high, 128}} {
		if c.present {
			alphabet += c.size
		}
	}
	return float64(characters(s)) * math.Log2(float64(alphabet))
}

// characters counts the characters of s, a run of bytes that are not UTF-8 counting as one: so
// a token cut inside a multi-byte character (its bytes then invalid one by one) never counts
// more characters than the whole one did.
func characters(s string) int {
	n, invalid := 0, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		bad := r == utf8.RuneError && size == 1
		if !bad || !invalid {
			n++
		}
		invalid = bad
		i += size
	}
	return n
}

// CheckToken refuses a token whose TokenBits is under MinTokenBits, saying how to make one.
func CheckToken(tok []byte) error {
	if bits := TokenBits(tok); bits < MinTokenBits {
		return fmt.Errorf("%w: about %.0f bits (length × log2 of the alphabet its character classes span), "+
			"want at least %d; %s", ErrWeakToken, bits, MinTokenBits, TokenHowTo)
	}
	return nil
}

// NewToken returns a random token of 256 bits: 64 hex digits.
func NewToken() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating token: %w", err)
	}
	return []byte(hex.EncodeToString(b)), nil
}
