package tailbuf

import (
	"strings"
	"testing"
)

func TestBufferKeepsTheEnd(t *testing.T) {
	b := Buffer{Max: 8}
	b.Write([]byte("0123456789"))
	b.Write([]byte("ab\n"))
	if got := b.String(); got != "56789ab" {
		t.Errorf("kept %q, want the last 8 bytes trimmed: %q", got, "56789ab")
	}
	if got := Of([]byte(strings.Repeat("x", DefaultMax) + "end")); !strings.HasSuffix(got, "end") || len(got) != DefaultMax {
		t.Errorf("Of kept %d bytes ending %q", len(got), got[len(got)-3:])
	}
}
