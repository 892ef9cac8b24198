package main

import (
	"io"
	"strings"
	"unicode"
)

// termSafe returns a writer that passes text to w with every control character but newline and
// tab (escape sequences, carriage returns, C1 controls) and every invalid UTF-8 byte replaced
// by U+FFFD: for what the converter prints of strings it did not write itself (the VM's paths,
// a scriptlet's output, a registry cache entry's record).
func termSafe(w io.Writer) io.Writer { return termSafeWriter{w} }

type termSafeWriter struct{ w io.Writer }

func (t termSafeWriter) Write(p []byte) (int, error) {
	s := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || unicode.IsPrint(r) {
			return r
		}
		return '\uFFFD'
	}, strings.ToValidUTF8(string(p), "\uFFFD"))
	if _, err := io.WriteString(t.w, s); err != nil {
		return 0, err
	}
	return len(p), nil
}
