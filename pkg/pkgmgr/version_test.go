package pkgmgr

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// versionPair is one comparison for an oracle.
type versionPair struct{ a, b string }

// versionStyle says how to generate versions for one manager.
type versionStyle struct {
	seps    string // separators inside the version
	letters string
	epochs  bool
	release string // the separator before a release, "" for none
}

var (
	debianStyle = versionStyle{seps: ".+~", letters: "abczAZ", epochs: true, release: "-"}
	rpmStyle    = versionStyle{seps: ".+~^_", letters: "abczAZ", epochs: true, release: "-"}
	pacmanStyle = versionStyle{seps: ".+_", letters: "abcprz", epochs: true, release: "-"}
)

// genVersion makes a random version: digit runs (some with leading zeros), letter runs and
// separators, with an optional epoch and release.
func genVersion(r *rand.Rand, st versionStyle) string {
	var sb strings.Builder
	if st.epochs && r.Intn(5) == 0 {
		fmt.Fprintf(&sb, "%d:", r.Intn(3))
	}
	sb.WriteString(genRuns(r, st, 1+r.Intn(5)))
	if st.release != "" && r.Intn(3) > 0 {
		sb.WriteString(st.release + genRuns(r, st, 1+r.Intn(3)))
	}
	return sb.String()
}

func genRuns(r *rand.Rand, st versionStyle, n int) string {
	var sb strings.Builder
	sb.WriteString(strconv.Itoa(r.Intn(12)))
	for i := 1; i < n; i++ {
		switch r.Intn(6) {
		case 0, 1:
			sb.WriteByte(st.seps[r.Intn(len(st.seps))])
			sb.WriteString(strconv.Itoa(r.Intn(30)))
		case 2:
			sb.WriteByte(st.letters[r.Intn(len(st.letters))])
		case 3:
			sb.WriteString("0" + strconv.Itoa(r.Intn(10)))
		case 4:
			sb.WriteByte(st.seps[r.Intn(len(st.seps))])
			sb.WriteString([]string{"rc1", "beta", "git20240101", "dfsg", "b1", "deb12u1", "0"}[r.Intn(7)])
		default:
			sb.WriteString("." + strconv.Itoa(r.Intn(3)))
		}
	}
	return sb.String()
}

// mutate changes a version a little, so that pairs disagree late in the string.
func mutate(r *rand.Rand, v string, st versionStyle) string {
	ops := []func(string) string{
		func(s string) string { return s + st.seps[r.Intn(len(st.seps)):][:1] + strconv.Itoa(r.Intn(3)) },
		func(s string) string { return s + "~" + []string{"rc1", "", "0", "a"}[r.Intn(4)] },
		func(s string) string { return s + string(st.letters[r.Intn(len(st.letters))]) },
		func(s string) string { return s + ".0" },
		func(s string) string { return s[:len(s)-1] },
		func(s string) string { return "1:" + s },
		func(s string) string { return s + st.release + "0" },
		func(s string) string { return strings.Replace(s, ".", "+", 1) },
		func(s string) string { return strings.Replace(s, "1", "01", 1) },
		func(s string) string { return strings.Replace(s, "0", "", 1) },
		func(s string) string { return s + "^" + strconv.Itoa(r.Intn(3)) },
		func(s string) string { return s + "." },
	}
	for {
		out := ops[r.Intn(len(ops))](v)
		if out != "" && isDigitByte(out[0]) && !strings.HasSuffix(out, "-") && !strings.HasSuffix(out, ":") && !strings.Contains(out, ":-") {
			return out
		}
	}
}

// genPairs makes n pairs of related and unrelated versions, deterministically.
func genPairs(seed int64, n int, st versionStyle) []versionPair {
	r := rand.New(rand.NewSource(seed))
	pairs := make([]versionPair, 0, n)
	for len(pairs) < n {
		a := genVersion(r, st)
		var b string
		switch k := r.Intn(10); {
		case k < 4:
			b = mutate(r, a, st)
		case k < 6:
			b = mutate(r, mutate(r, a, st), st)
		case k < 9:
			b = genVersion(r, st)
		default:
			b = a
		}
		pairs = append(pairs, versionPair{a, b})
	}
	return pairs
}

// runOracle runs script (a /bin/sh loop reading "a<TAB>b" lines from the file given as $1
// and printing one answer a line) over the pairs, split across the CPUs, and returns the
// answers in order.
func runOracle(t *testing.T, script string, pairs []versionPair) []string {
	t.Helper()
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "oracle.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	chunks := runtime.NumCPU()
	size := (len(pairs) + chunks - 1) / chunks
	out := make([][]string, chunks)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failure error
	for c := 0; c < chunks; c++ {
		lo, hi := min(c*size, len(pairs)), min((c+1)*size, len(pairs))
		in := filepath.Join(dir, fmt.Sprintf("pairs%d", c))
		var sb strings.Builder
		for _, p := range pairs[lo:hi] {
			sb.WriteString(p.a + "\t" + p.b + "\n")
		}
		if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			res, err := exec.Command("/bin/sh", scriptPath, in).Output()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failure = fmt.Errorf("oracle: %v", err)
				return
			}
			out[c] = strings.Fields(string(res))
		}(c)
	}
	wg.Wait()
	if failure != nil {
		t.Fatal(failure)
	}
	var all []string
	for _, o := range out {
		all = append(all, o...)
	}
	if len(all) != len(pairs) {
		t.Fatalf("oracle answered %d of %d pairs", len(all), len(pairs))
	}
	return all
}

// checkOracle compares ours with the oracle's answers ("-1", "0", "1"; anything else is a
// pair the tool refused) and reports how many agreed.
func checkOracle(t *testing.T, name string, pairs []versionPair, answers []string, ours func(a, b string) int) int {
	t.Helper()
	agreed, refused, bad := 0, 0, 0
	for i, p := range pairs {
		want, err := strconv.Atoi(answers[i])
		if err != nil {
			refused++
			continue
		}
		if got := ours(p.a, p.b); got != want {
			if bad++; bad <= 20 {
				t.Errorf("%s(%q, %q) = %d, tool says %d", name, p.a, p.b, got, want)
			}
			continue
		}
		agreed++
	}
	if refused > len(pairs)/20 {
		t.Errorf("the tool refused %d of %d pairs: the generator makes invalid versions", refused, len(pairs))
	}
	t.Logf("%s: %d of %d pairs agree with the tool (%d refused by it, %d differ)", name, agreed, len(pairs), refused, bad)
	return agreed
}

const dpkgOracle = `while IFS='	' read -r a b; do
  dpkg --compare-versions "$a" lt "$b" 2>/dev/null; rc=$?
  if [ $rc -eq 0 ]; then echo -1; continue; fi
  if [ $rc -ne 1 ]; then echo E; continue; fi
  if dpkg --compare-versions "$a" eq "$b" 2>/dev/null; then echo 0; else echo 1; fi
done < "$1"
`

// realDebianVersions returns this machine's installed versions by package, with every version
// apt-cache madison knows for those packages, and the distinct versions of the whole index.
func realDebianVersions(t *testing.T) (byPkg map[string][]string, all []string) {
	t.Helper()
	byPkg = map[string][]string{}
	seen := map[string]bool{}
	add := func(pkg, v string) {
		if v != "" && !seen[pkg+" "+v] {
			seen[pkg+" "+v] = true
			byPkg[pkg] = append(byPkg[pkg], v)
		}
	}
	var names []string
	for _, l := range commandLines(t, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n") {
		f := strings.Split(l, "\t")
		add(f[0], f[1])
		names = append(names, f[0])
	}
	if _, err := exec.LookPath("apt-cache"); err == nil {
		out, _ := exec.Command("apt-cache", append([]string{"madison"}, names...)...).Output()
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Split(l, "|"); len(f) >= 2 {
				add(strings.TrimSpace(f[0]), strings.TrimSpace(f[1]))
			}
		}
		out, _ = exec.Command("apt-cache", "dumpavail").Output()
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		distinct := map[string]bool{}
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok {
				distinct[v] = true
			}
		}
		for v := range distinct {
			all = append(all, v)
		}
		sort.Strings(all)
	}
	return byPkg, all
}

// realPairs pairs every two versions of each package, then neighbours in the sorted list of
// all versions (which share prefixes), every step-th.
func realPairs(byPkg map[string][]string, all []string, step int) []versionPair {
	var pairs []versionPair
	var pkgs []string
	for p := range byPkg {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		vs := byPkg[p]
		for i := range vs {
			for j := i + 1; j < len(vs); j++ {
				pairs = append(pairs, versionPair{vs[i], vs[j]}, versionPair{vs[j], vs[i]})
			}
		}
	}
	for i := 0; i+1 < len(all); i += step {
		pairs = append(pairs, versionPair{all[i], all[i+1]})
	}
	return pairs
}

func TestCompareDebianOracle(t *testing.T) {
	testenv.RequireCommands(t, "dpkg", "dpkg-query")
	pairs := genPairs(1, 2500, debianStyle)
	pairs = append(pairs, handDebianPairs...)
	byPkg, all := realDebianVersions(t)
	real := realPairs(byPkg, all, max(1, len(all)/1500))
	answers := runOracle(t, dpkgOracle, append(pairs, real...))
	gen := checkOracle(t, "CompareDebian/generated", pairs, answers[:len(pairs)], CompareDebian)
	got := checkOracle(t, "CompareDebian/real", real, answers[len(pairs):], CompareDebian)
	if gen < 2000 {
		t.Errorf("only %d generated pairs checked, want >= 2000", gen)
	}
	if len(all) > 0 && got < 1000 {
		t.Errorf("only %d real pairs checked", got)
	}
}

// handDebianPairs are the edge cases of deb-version(7).
var handDebianPairs = []versionPair{
	{"1.0~rc1", "1.0"}, {"1.0", "1.0+b1"}, {"1.0", "1.0-0"}, {"1:0.1", "2.0"}, {"0:1.0", "1.0"},
	{"1.0~~", "1.0~"}, {"1.0~~a", "1.0~"}, {"1.0a", "1.0+"}, {"1.0", "1.0."}, {"1.01", "1.1"},
	{"1.0-1", "1.0-1~bpo1"}, {"2:1", "10:0"}, {"1.2.3-1+deb12u1", "1.2.3-1"}, {"a", "b"},
	{"1.0-a-1", "1.0-a-2"}, {"1.0:2-1", "1:1.0:2-1"}, {"007", "7"}, {"1.0A", "1.0a"},
}

// rpmOracleScript runs rpm's Lua rpm.vercmp over a pairs file; refused versions print E.
const rpmOracleScript = `local out = {}
for line in io.lines(arg_pairs) do
  local a, b = line:match("^([^\t]*)\t(.*)$")
  local ok, r = pcall(rpm.vercmp, a, b)
  out[#out + 1] = ok and tostring(r) or "E"
end
io.write(table.concat(out, "\n"), "\n")
`

func TestCompareRPMOracle(t *testing.T) {
	testenv.RequireCommands(t, "rpm")
	pairs := genPairs(2, 3000, rpmStyle)
	pairs = append(pairs, handRPMPairs...)
	byPkg, all := realDebianVersions(t) // real-world version strings, compared by rpm's rules
	pairs = append(pairs, realPairs(byPkg, all, 1)...)
	dir := t.TempDir()
	var sb strings.Builder
	for _, p := range pairs {
		sb.WriteString(p.a + "\t" + p.b + "\n")
	}
	in, script := filepath.Join(dir, "pairs"), filepath.Join(dir, "vercmp.lua")
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	lua := fmt.Sprintf("local arg_pairs = %q\n%s", in, rpmOracleScript)
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("rpm", "--eval", fmt.Sprintf("%%{lua: dofile(%q)}", script)).Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	answers := strings.Fields(string(out))
	if len(answers) != len(pairs) {
		t.Fatalf("rpm answered %d of %d pairs", len(answers), len(pairs))
	}
	if n := checkOracle(t, "CompareRPM", pairs, answers, CompareRPM); n < 1000 {
		t.Errorf("only %d pairs checked, want >= 1000", n)
	}
}

var handRPMPairs = []versionPair{
	{"1.0~rc1-1", "1.0-1"}, {"1.0^git1-1", "1.0-1"}, {"1.0^git1-1", "1.0.1-1"}, {"1.0^", "1.0"},
	{"1.0~", "1.0^"}, {"1:1.0-1", "2.0-1"}, {"0:1.0-1", "1.0-1"}, {"1.0-1", "1.0"}, {"1.0a", "1.0"},
	{"1.0", "1.0.0"}, {"1.0", "1_0"}, {"1.010", "1.9"}, {"2.0.1a", "2.0.1"}, {"5.5p1", "5.5p10"},
	{"xyz.4", "xyz.4"}, {"1.0-1.el8", "1.0-1.el8_4"}, {"1.0-1.fc38", "1.0-1.fc39"}, {"01:1", "1:1"},
}
