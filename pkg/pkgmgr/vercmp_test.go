package pkgmgr

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// The pacman oracle is libalpm's alpm_pkg_vercmp, the function pacman's vercmp tool prints.
// Debian ships libalpm but not that tool: scripts/setup.sh builds scripts/vercmp.c (the same
// call, with a batch mode reading "A<TAB>B" lines) into this path.
const vercmpTool = "/usr/local/libexec/vm2image/vercmp"

// vercmpOracle feeds a pairs file to the tool's batch mode: one process for all the pairs.
const vercmpOracle = `exec ` + vercmpTool + ` < "$1"
`

func TestComparePacmanOracle(t *testing.T) {
	testenv.RequireCommands(t, "/usr/local/libexec/vm2image/vercmp") // vercmpTool, spelled out for scripts/fresh-check.sh
	pairs := genPairs(3, 1500, pacmanStyle)
	pairs = append(pairs, handPacmanPairs...)
	_, all := realDebianVersions(t)
	real := realPairs(nil, all, max(1, len(all)/500))
	answers := runOracle(t, vercmpOracle, append(pairs, real...))
	n := checkOracle(t, "ComparePacman", pairs, answers[:len(pairs)], ComparePacman)
	n += checkOracle(t, "ComparePacman/real", real, answers[len(pairs):], ComparePacman)
	if n < 1000 {
		t.Errorf("only %d pairs checked, want >= 1000", n)
	}
}

var handPacmanPairs = []versionPair{
	{"1.0a", "1.0"}, {"1.0", "1.0.a"}, {"1.0.a", "1.0.1"}, {"1.0..1", "1.0.1"}, {"1:1.0-1", "2.0-1"},
	{"1.0-1", "1.0"}, {"1.0-1", "1.0-2"}, {"1.0rc1", "1.0"}, {"1.5.0", "1.5"}, {"1.5.1", "1.5.b"},
	{"1.0_1", "1.0.1"}, {"1.0+1", "1.0.1"}, {":1.0", "0:1.0"}, {"1.0-1.1", "1.0-1"},
}

// pacmanKnown are comparisons whose answers pacman documents (vercmp(8), PKGBUILD(5)) or
// everyone relies on: a chain is in increasing order, every later element newer than every
// earlier one; a pair of equals compares 0 both ways.
var pacmanKnown = struct {
	chains [][]string
	equal  []versionPair
}{
	chains: [][]string{
		// vercmp(8)'s two orderings.
		{"1.0a", "1.0b", "1.0beta", "1.0p", "1.0pre", "1.0rc", "1.0", "1.0.a", "1.0.1"},
		{"1", "1.0", "1.1", "1.1.1", "1.2", "2.0", "3.0.0"},
		// Epochs beat versions; a missing epoch is 0.
		{"1.0", "0:1.1", "1:0.1", "1:1.0", "2:0"},
		// Releases order within a version, numerically.
		{"1.5.0-1", "1.5.0-2", "1.5.0-10", "1.5.1-1"},
		// Letters right after digits are older than the end, dotted letters newer.
		{"1.5b", "1.5", "1.5.a", "1.5.b", "1.5.1"},
		// More separators before a segment: newer.
		{"2.0a", "2.0.a"}, {"2_a", "2___a"}, {"1.0.1", "1.0..1"},
		// Digit runs compare as numbers; a number beats letters.
		{"1.9", "1.010a", "1.10", "1.11"}, {"1.a", "1.0"},
	},
	equal: []versionPair{
		{"1.5.0", "1.5.0"}, {"1.5", "1.5-1"}, {"1.1-1", "1.1"}, {"1.5.b-1", "1.5.b"},
		{"0:1.0", "1.0"}, {"2.0", "2_0"}, {"2.0_a", "2_0.a"}, {"1.01", "1.1"}, {"1:1.0-3", "01:1.0"},
	},
}

// pacmanKnownCases expands pacmanKnown into pairs with their answers, each both ways.
func pacmanKnownCases() (pairs []versionPair, want []int) {
	add := func(a, b string, w int) {
		pairs = append(pairs, versionPair{a, b}, versionPair{b, a})
		want = append(want, w, -w)
	}
	for _, c := range pacmanKnown.chains {
		for i := range c {
			for j := i + 1; j < len(c); j++ {
				add(c[i], c[j], -1)
			}
		}
	}
	for _, p := range pacmanKnown.equal {
		add(p.a, p.b, 0)
	}
	return pairs, want
}

// TestComparePacmanKnown checks ours on the documented answers (no tool needed).
func TestComparePacmanKnown(t *testing.T) {
	pairs, want := pacmanKnownCases()
	for i, p := range pairs {
		if got := ComparePacman(p.a, p.b); got != want[i] {
			t.Errorf("ComparePacman(%q, %q) = %d, want %d", p.a, p.b, got, want[i])
		}
	}
}

// TestVercmpOracleKnown checks the oracle itself: the tool scripts/setup.sh builds must give
// pacman's documented answers, through both its pacman-compatible "vercmp A B" form and the
// batch form TestComparePacmanOracle uses, or that test proves nothing.
func TestVercmpOracleKnown(t *testing.T) {
	testenv.RequireCommands(t, "/usr/local/libexec/vm2image/vercmp")
	pairs, want := pacmanKnownCases()
	batch := runOracle(t, vercmpOracle, pairs)
	for i, p := range pairs {
		if batch[i] != strconv.Itoa(want[i]) {
			t.Errorf("vercmp batch %q %q = %s, pacman says %d", p.a, p.b, batch[i], want[i])
		}
		if i%7 != 0 { // the one-pair form for a sample: a process each
			continue
		}
		out, err := exec.Command(vercmpTool, p.a, p.b).Output()
		if err != nil {
			t.Fatalf("vercmp %q %q: %v", p.a, p.b, err)
		}
		if got := strings.TrimSpace(string(out)); got != strconv.Itoa(want[i]) {
			t.Errorf("vercmp %q %q = %s, pacman says %d", p.a, p.b, got, want[i])
		}
	}
	if err := exec.Command(vercmpTool, "1.0").Run(); err == nil {
		t.Errorf("vercmp with one argument succeeded, want a usage error")
	}
}
