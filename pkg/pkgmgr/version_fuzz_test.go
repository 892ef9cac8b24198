package pkgmgr

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestCompareAPKVectors checks CompareAPK against apk-tools' own comparison vectors, both ways
// round.
func TestCompareAPKVectors(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "apk-version-vectors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]int{"<": -1, "=": 0, ">": 1}
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 3 || strings.HasPrefix(fl[0], "#") {
			continue
		}
		a, op, b := fl[0], fl[1], fl[2]
		if got := CompareAPK(a, b); got != want[op] {
			t.Errorf("CompareAPK(%q, %q) = %d, apk-tools says %s", a, b, got, op)
		}
		if got := CompareAPK(b, a); got != -want[op] {
			t.Errorf("CompareAPK(%q, %q) = %d, apk-tools says the reverse of %s", b, a, got, op)
		}
		n++
	}
	if n < 700 {
		t.Fatalf("read %d vectors, want the whole file", n)
	}
	t.Logf("%d apk-tools vectors agree, both ways round", n)
}

// apkValid reports whether every token of v parses, as apk's version validation does.
func apkValid(v string) bool {
	t := apkFirstToken(v)
	for t.kind < apkEnd {
		t.next()
	}
	return t.kind == apkEnd
}

// TestCompareAPKReal takes the versions of a real Alpine database and checks them, and
// versions derived from them by apk's rules, for validity and a consistent order: a higher
// revision is newer, a pre-release suffix older, a post-release suffix or a further number
// newer.
func TestCompareAPKReal(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(requireShared(t, "apk/alpine-3.14-armv7"), apkInstalledPath))
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, l := range strings.Split(string(raw), "\n") {
		v, ok := strings.CutPrefix(l, "V:")
		if !ok {
			continue
		}
		if !apkValid(v) {
			t.Errorf("real version %q does not parse", v)
		}
		up, rev, ok := strings.Cut(v, "-r")
		n, err := strconv.Atoi(rev)
		if !ok || err != nil {
			t.Fatalf("version %q has no -rN", v)
		}
		derived := []struct {
			v    string
			want int
		}{
			{up + "-r" + strconv.Itoa(n+1), 1},
			{up + "_rc1-r" + rev, -1},
			{up + "_alpha-r" + rev, -1},
			{up + "_p1-r" + rev, 1},
			{up + "_git20240101-r" + rev, 1},
			{up + ".1-r" + rev, 1},
			{up, -1},
			{v, 0},
		}
		all = append(all, v)
		for _, d := range derived {
			if !apkValid(d.v) {
				continue // "1.1.1k.1": no number may follow a letter
			}
			if got := CompareAPK(d.v, v); got != d.want {
				t.Errorf("CompareAPK(%q, %q) = %d, want %d", d.v, v, got, d.want)
			}
			all = append(all, d.v)
		}
	}
	if len(all) < 26*6 {
		t.Fatalf("read %d versions", len(all))
	}
	sort.SliceStable(all, func(i, j int) bool { return CompareAPK(all[i], all[j]) < 0 })
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if CompareAPK(all[i], all[j]) > 0 {
				t.Fatalf("order is not transitive: %q sorts before %q", all[i], all[j])
			}
		}
	}
}

// fuzzCompare checks that a comparison is a well-formed order on any input: results in
// {-1, 0, 1}, antisymmetric, reflexive.
func fuzzCompare(f *testing.F, cmp func(a, b string) int, seeds []versionPair) {
	for _, s := range seeds {
		f.Add(s.a, s.b)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, ba := cmp(a, b), cmp(b, a)
		if ab < -1 || ab > 1 || ab != -ba {
			t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if cmp(a, a) != 0 || cmp(b, b) != 0 {
			t.Fatalf("a version differs from itself: %q %q", a, b)
		}
	})
}

func FuzzCompareDebian(f *testing.F) { fuzzCompare(f, CompareDebian, handDebianPairs) }
func FuzzCompareRPM(f *testing.F)    { fuzzCompare(f, CompareRPM, handRPMPairs) }
func FuzzComparePacman(f *testing.F) { fuzzCompare(f, ComparePacman, handPacmanPairs) }

func FuzzCompareAPK(f *testing.F) {
	fuzzCompare(f, CompareAPK, []versionPair{
		{"1.2.3-r0", "1.2.3_rc1-r0"}, {"1.0~abc1", "1.0~abd"}, {"8.2.0", "8.2.001"}, {"1.0bc", "1.0"},
		{"0.1_alpha1_pre2", "0.1_p1_pre2"}, {"1.0-r1-r2", "1.0_foo"},
	})
}
