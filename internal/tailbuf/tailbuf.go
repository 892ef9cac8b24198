// Package tailbuf keeps the end of a stream: the last bytes a failed command wrote, for its
// error message.
package tailbuf

import (
	"strings"
	"sync"
)

// DefaultMax is how much a Buffer with Max 0 keeps.
const DefaultMax = 4096

// Buffer keeps the last Max bytes written to it (DefaultMax when 0). It is safe for concurrent
// use, so one Buffer can take a command's stdout and stderr.
type Buffer struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	max := t.Max
	if max <= 0 {
		max = DefaultMax
	}
	t.b = append(t.b, p...)
	if len(t.b) > max {
		t.b = append(t.b[:0], t.b[len(t.b)-max:]...)
	}
	return len(p), nil
}

// String returns what is kept, without surrounding white space.
func (t *Buffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// Of returns the last DefaultMax bytes of b, without surrounding white space.
func Of(b []byte) string {
	var t Buffer
	t.Write(b)
	return t.String()
}
