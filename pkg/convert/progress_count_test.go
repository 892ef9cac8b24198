package convert

import (
	"strings"
	"testing"
)

// TestAptCounter: apt's "newly installed" line gives the total, "Get:" lines count fetches and
// dpkg's "Setting up" lines count configured packages, across writes that split lines.
func TestAptCounter(t *testing.T) {
	got := map[string][2]int{}
	a := &aptCounter{report: func(what string, done, total int) { got[what] = [2]int{done, total} }}
	out := "+ apt-get update\nGet:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n" +
		"+ apt-get install -y a b c\nReading package lists...\n0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.\n" +
		"Get:1 http://deb.debian.org/debian bookworm/main amd64 a amd64 1.0 [10 kB]\nGet:2 http://deb.debian.org/debian bookworm/main amd64 b amd64 1.0 [10 kB]\n" +
		"Unpacking a (1.0) ...\nSetting up a (1.0) ...\nSetting up b (1.0) ...\n"
	for len(out) > 0 { // 7-byte writes split every line
		n := min(7, len(out))
		a.Write([]byte(out[:n]))
		out = out[n:]
	}
	if got[ItemsFetched] != [2]int{2, 3} || got[ItemsConfigured] != [2]int{2, 3} {
		t.Errorf("counts %v, want fetched 2/3 and configured 2/3", got)
	}
}

func FuzzAptCounter(f *testing.F) {
	f.Add("0 upgraded, 3 newly installed, 0 to remove\nGet:1 x\nSetting up a (1) ...\n")
	f.Fuzz(func(t *testing.T, s string) {
		a := &aptCounter{report: func(string, int, int) {}}
		for _, part := range strings.SplitAfter(s, "\n") {
			a.Write([]byte(part))
		}
		if a.fetched < 0 || a.setUp < 0 || a.total < 0 || len(a.buf) > 64<<10+len(s) {
			t.Fatalf("bad state %+v", a)
		}
	})
}
