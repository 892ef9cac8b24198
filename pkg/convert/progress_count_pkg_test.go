package convert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countOutput feeds out to a pkgCounter in writes of size bytes and returns the last figures
// of each kind, and the number of reports.
func countOutput(t testing.TB, out string, size int) (map[string][2]int, int) {
	got := map[string][2]int{}
	n := 0
	c := newPkgCounter(func(what string, done, total int) {
		n++
		if total > 0 && done > total || done < 0 || total < 0 {
			t.Fatalf("%s: %d of %d", what, done, total)
		}
		got[what] = [2]int{done, total}
	})
	for len(out) > 0 {
		k := min(size, len(out))
		c.Write([]byte(out[:k]))
		out = out[k:]
	}
	return got, n
}

func readTestdata(t testing.TB, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "progress", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPkgCounterReal: the output of the real dnf, zypper and pacman, captured from the build
// sandbox converting the test distributions' VMs (a download step, then an install step, then
// a downgrade of libfoo to the VM's version for dnf and zypper), counts every package fetched
// and configured of the totals, across writes that split lines.
func TestPkgCounterReal(t *testing.T) {
	for _, tc := range []struct {
		file                string
		fetched, configured [2]int
	}{
		// dnf and zypper: webd and its three dependencies, then libfoo's downgrade.
		{"dnf.out", [2]int{5, 5}, [2]int{5, 5}},
		{"zypper.out", [2]int{5, 5}, [2]int{5, 5}},
		// pacman: three packages (it cannot pin libfoo's version).
		{"pacman.out", [2]int{3, 3}, [2]int{3, 3}},
	} {
		for _, size := range []int{7, 4096} {
			got, n := countOutput(t, readTestdata(t, tc.file), size)
			if got[ItemsFetched] != tc.fetched || got[ItemsConfigured] != tc.configured {
				t.Errorf("%s (writes of %d): fetched %v, configured %v; want %v and %v", tc.file, size, got[ItemsFetched], got[ItemsConfigured], tc.fetched, tc.configured)
			}
			if n < tc.fetched[0]+tc.configured[0] {
				t.Errorf("%s: %d reports, want one per package and kind", tc.file, n)
			}
		}
	}
}

// TestPkgCounterForms: the forms the captured runs did not show: pacman on a terminal ("(2/3)
// installing"), dnf upgrades among installs, a redrawn line, apt through the same writer, and
// a command that is no package manager (nothing counted).
func TestPkgCounterForms(t *testing.T) {
	got, _ := countOutput(t, "+ pacman -S --noconfirm webd\nPackages (3) a-1 b-1 c-1\n:: Processing package changes...\n"+
		"(1/3) checking keys in keyring\n(1/3) installing a  [----]   0%\r(1/3) installing a  [####] 100%\n(2/3) upgrading b   [####] 100%\n", 5)
	if got[ItemsConfigured] != [2]int{2, 3} || got[ItemsFetched] != [2]int{} {
		t.Errorf("pacman on a terminal: %v", got)
	}
	got, _ = countOutput(t, "+ dnf install -y a b c\nInstall  2 Packages\nUpgrade  1 Package\n\n"+
		"(1/3): a-1.x86_64.rpm  1 MB/s | 1 kB 00:00\n  Upgrading        : b-2.x86_64   1/4\n  Installing       : a-1.x86_64   2/4\n  Running scriptlet: a-1.x86_64   2/4\n", 9)
	if got[ItemsConfigured] != [2]int{2, 3} || got[ItemsFetched] != [2]int{1, 3} {
		t.Errorf("dnf: %v", got)
	}
	got, _ = countOutput(t, "+ apt-get install -y a\n0 upgraded, 1 newly installed, 0 to remove\nGet:1 http://x a 1 [1 kB]\nSetting up a (1) ...\n", 3)
	if got[ItemsConfigured] != [2]int{1, 1} || got[ItemsFetched] != [2]int{1, 1} {
		t.Errorf("apt: %v", got)
	}
	got, _ = countOutput(t, "+ rpm --import key\n(1/3) installing a\nInstall 3 Packages\n  Installing : a 1/1\n", 3)
	if len(got) != 0 {
		t.Errorf("counted the output of another command: %v", got)
	}
}

func fuzzPkgCounter(f *testing.F, cmd, file string) {
	f.Add(readTestdata(f, file))
	f.Add(cmd + "\nPackages (2) a b\n(1/2) installing a\n")
	f.Fuzz(func(t *testing.T, s string) {
		c := newPkgCounter(func(what string, done, total int) {
			if done < 0 || total < 0 || total > 0 && done > total {
				t.Fatalf("%s: %d of %d", what, done, total)
			}
		})
		c.Write([]byte(cmd + "\n"))
		for _, part := range strings.SplitAfter(s, "\n") {
			c.Write([]byte(part))
		}
		if len(c.buf) > maxLine+len(s) {
			t.Fatalf("buffer of %d bytes", len(c.buf))
		}
	})
}

func FuzzDnfCounter(f *testing.F)    { fuzzPkgCounter(f, "+ dnf install -y x", "dnf.out") }
func FuzzZypperCounter(f *testing.F) { fuzzPkgCounter(f, "+ zypper install x", "zypper.out") }
func FuzzPacmanCounter(f *testing.F) { fuzzPkgCounter(f, "+ pacman -S x", "pacman.out") }

// BenchmarkPkgCounter: the cost of counting, per 32 KiB of dnf's output.
func BenchmarkPkgCounter(b *testing.B) {
	out := readTestdata(b, "dnf.out")
	chunk := []byte(strings.Repeat(out, 32<<10/len(out)+1)[:32<<10])
	c := newPkgCounter(func(string, int, int) {})
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		c.Write(chunk)
	}
	lines := float64(strings.Count(string(chunk), "\n"))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/lines, "ns/line")
}
