package diff_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/fsmeta"
)

// treatAsMounts are the directories whose contents a dir: source leaves out (fswalk's
// TreatAsMounts); rsync is told to leave them out too.
var treatAsMounts = []string{"proc", "sys", "dev", "run"}

// TestRsyncOracle checks that the rsync strategy changes exactly the paths `rsync -aniXH
// --delete NEW/ OLD/` itemizes (what rsync would do to turn OLD into NEW) on a real pair of
// Debian roots. rsync's "./" line (the roots) is left out: the roots are not compared.
func TestRsyncOracle(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "rsync")
	oldDir := testenv.Root(t, difftest.DebianOld)
	newDir := testenv.Root(t, difftest.DebianNew)

	start := time.Now()
	res := run(t, open(t, oldDir), open(t, newDir), diff.Options{Strategy: diff.Rsync})
	took := time.Since(start)
	got := oracleSet(t, res, oldDir)

	start = time.Now()
	want := rsyncItemized(t, newDir, oldDir)
	rsyncTook := time.Since(start)

	if !slices.Equal(got, want) {
		extra, missing := setDiff(got, want), setDiff(want, got)
		t.Errorf("rsync strategy and rsync disagree: %d paths only ours, %d only rsync's\nours only: %q\nrsync only: %q",
			len(extra), len(missing), head(extra, 40), head(missing, 40))
	}
	st := res.Stats
	t.Logf("%d changed paths; diff %v, rsync -n %v; stats %+v", len(got), took, rsyncTook, st)
	if st.Added == 0 || st.Deleted == 0 || st.Modified == 0 || st.Metadata == 0 {
		t.Errorf("the oracle pair should have every kind of change: %+v", st)
	}
}

// oracleSet is the set of paths the result changes, as rsync would list them: deleted and
// replaced directories expanded to their contents, a replaced directory itself only when its
// own metadata changed.
func oracleSet(t *testing.T, res *diff.Result, oldDir string) []string {
	t.Helper()
	expanded := &diff.Result{}
	for _, c := range res.Changes {
		if c.Kind == diff.DirReplaced && !dirMetaChanged(c.Old, c.New) {
			for _, p := range walkPaths(t, oldDir+"/"+c.Path) {
				expanded.Changes = append(expanded.Changes, diff.Change{Kind: diff.Deleted, Path: c.Path + "/" + p,
					Old: &fsmeta.Entry{Type: fsmeta.TypeRegular}})
			}
			continue
		}
		expanded.Changes = append(expanded.Changes, c)
	}
	return changedPaths(t, expanded, oldDir)
}

func dirMetaChanged(o, n *fsmeta.Entry) bool {
	return o.Mode != n.Mode || o.UID != n.UID || o.GID != n.GID || o.MTime/1e9 != n.MTime/1e9
}

// rsyncItemized runs rsync in dry-run mode and returns the paths it itemizes.
func rsyncItemized(t *testing.T, src, dst string) []string {
	t.Helper()
	args := []string{"-aniXH", "--delete", "--numeric-ids", "--out-format=%i %n"}
	for _, d := range treatAsMounts {
		args = append(args, "--exclude=/"+d+"/*")
	}
	args = append(args, src+"/", dst+"/")
	out, err := exec.Command("rsync", args...).Output()
	if err != nil {
		t.Fatalf("rsync %s: %v", strings.Join(args, " "), err)
	}
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 13 {
			continue
		}
		p := strings.TrimSuffix(unescapeRsync(line[12:]), "/")
		if p == "." || p == "" {
			continue
		}
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return slices.Compact(paths)
}

// unescapeRsync undoes rsync's "\#ooo" escapes of unprintable bytes in names.
func unescapeRsync(s string) string {
	if !strings.Contains(s, `\#`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i+4 < len(s)+0 && s[i] == '\\' && s[i+1] == '#' {
			if v, err := strconv.ParseUint(s[i+2:i+5], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 4
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
