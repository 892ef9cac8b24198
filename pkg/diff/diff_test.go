package diff_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// pair builds OLD and NEW trees and opens them as sources.
func pair(t *testing.T, old, new difftest.Tree) (oldDir, newDir string, o, n source.Source) {
	t.Helper()
	base := t.TempDir()
	oldDir, newDir = filepath.Join(base, "old"), filepath.Join(base, "new")
	for _, d := range []string{oldDir, newDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	difftest.Build(t, oldDir, old)
	difftest.Build(t, newDir, new)
	return oldDir, newDir, open(t, oldDir), open(t, newDir)
}

func open(t testing.TB, dir string) source.Source {
	t.Helper()
	s, err := source.OpenDir(dir, "dir:"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// kinds renders a result's changes as "path=kind" lines, in order.
func kinds(res *diff.Result) []string {
	var out []string
	for _, c := range res.Changes {
		out = append(out, c.Path+"="+string(c.Kind))
	}
	return out
}

func run(t *testing.T, o, n diff.Tree, opts diff.Options) *diff.Result {
	t.Helper()
	res, err := diff.Trees(context.Background(), o, n, opts)
	if err != nil {
		t.Fatalf("diff.Trees: %v", err)
	}
	return res
}

func TestComparePaths(t *testing.T) {
	sorted := []string{".", ".a", "a", "a/b", "a/b/c", "a-c", "a.d", "ab", "b", "b/\x00x", "b/a", "\xff"}
	for i := range sorted {
		for j := range sorted {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := diff.ComparePaths(sorted[i], sorted[j]); got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

// kindTrees is a pair of trees with a change of every kind.
func kindTrees() (old, new difftest.Tree) {
	later := difftest.MTime.Add(time.Hour)
	old = difftest.Tree{
		"same":           difftest.File{Content: "same"},
		"content":        difftest.File{Content: "old"},
		"grown":          difftest.File{Content: "old"},
		"mode":           difftest.File{Content: "m"},
		"xattr":          difftest.File{Content: "x", Meta: difftest.Meta{Xattrs: map[string]string{"user.a": "1"}}},
		"gone":           difftest.File{Content: "bye"},
		"gonedir/a":      difftest.File{Content: "12345"},
		"gonedir/sub/b":  difftest.File{Content: "123"},
		"f2d":            difftest.File{Content: "file"},
		"d2l/x":          difftest.File{Content: "x"},
		"link":           difftest.Symlink{Target: "same"},
		"dir/keep":       difftest.File{Content: "k"},
		"dir/drop":       difftest.File{Content: "d"},
		"repl/a":         difftest.File{Content: "a"},
		"repl/b":         difftest.File{Content: "bb"},
		"touched":        difftest.File{Content: "t"},
		"sel":            difftest.File{Content: "s"},
		"one/only":       difftest.File{Content: "o"},
		"dirmeta":        difftest.Dir{Meta: difftest.Meta{Mode: 0o755}},
		"dirmeta/inside": difftest.File{Content: "i"},
	}
	new = difftest.Tree{
		"same":           difftest.File{Content: "same"},
		"content":        difftest.File{Content: "new"},
		"grown":          difftest.File{Content: "longer"},
		"mode":           difftest.File{Content: "m", Meta: difftest.Meta{Mode: 0o600}},
		"xattr":          difftest.File{Content: "x", Meta: difftest.Meta{Xattrs: map[string]string{"user.a": "2"}}},
		"added":          difftest.File{Content: "hello"},
		"newdir/f":       difftest.File{Content: "f"},
		"f2d/inner":      difftest.File{Content: "in"},
		"d2l":            difftest.Symlink{Target: "same"},
		"link":           difftest.Symlink{Target: "content"},
		"dir/keep":       difftest.File{Content: "k"},
		"repl/c":         difftest.File{Content: "c"},
		"touched":        difftest.File{Content: "t", Meta: difftest.Meta{MTime: later}},
		"sel":            difftest.File{Content: "s"},
		"one":            difftest.Dir{},
		"dirmeta":        difftest.Dir{Meta: difftest.Meta{Mode: 0o700}},
		"dirmeta/inside": difftest.File{Content: "i"},
		"sock":           difftest.Socket{},
	}
	return old, new
}

func TestKinds(t *testing.T) {
	old, new := kindTrees()
	_, _, o, n := pair(t, old, new)
	common := []string{"added=added", "d2l=type-changed", "dir/drop=deleted",
		"dirmeta=metadata", "f2d=type-changed", "f2d/inner=added", "gone=deleted", "gonedir=deleted",
		"grown=modified", "link=modified", "mode=metadata", "newdir=added", "newdir/f=added",
		"one/only=deleted", "repl=dir-replaced", "repl/c=added"}
	for _, c := range []struct {
		strategy diff.Strategy
		extra    []string
	}{
		{diff.Rsync, []string{"touched=modified"}},    // same size and mtime: "content" is missed
		{diff.Checksum, []string{"content=modified"}}, // mtime only: "touched" is no change
	} {
		t.Run(string(c.strategy), func(t *testing.T) {
			res := run(t, o, n, diff.Options{Strategy: c.strategy})
			want := append(slices.Clone(common), c.extra...)
			want = append(want, "xattr=metadata")
			slices.SortFunc(want, func(a, b string) int {
				return diff.ComparePaths(strings.SplitN(a, "=", 2)[0], strings.SplitN(b, "=", 2)[0])
			})
			if got := kinds(res); !slices.Equal(got, want) {
				t.Errorf("changes:\n got %q\nwant %q", got, want)
			}
			st := res.Stats
			if st.Deleted != 10 || st.DeletedBytes != 21 || st.SocketsSkipped != 1 || st.DirReplaced != 1 {
				t.Errorf("stats: %+v", st)
			}
			var parents []string
			for _, e := range res.Parents {
				parents = append(parents, e.Path)
			}
			if want := []string{"dir", "one"}; !slices.Equal(parents, want) {
				t.Errorf("parents %q, want %q", parents, want)
			}
		})
	}
}

func TestChecksumMTimeAndContent(t *testing.T) {
	later := difftest.MTime.Add(time.Hour)
	old := difftest.Tree{"touch": difftest.File{Content: "aaaa"}, "swap": difftest.File{Content: "abcd"}}
	new := difftest.Tree{
		"touch": difftest.File{Content: "aaaa", Meta: difftest.Meta{MTime: later}},
		"swap":  difftest.File{Content: "dcba"}, // same size, same mtime: rsync's quick check misses it
	}
	_, _, o, n := pair(t, old, new)
	if got, want := kinds(run(t, o, n, diff.Options{Strategy: diff.Rsync})), []string{"touch=modified"}; !slices.Equal(got, want) {
		t.Errorf("rsync: %q, want %q", got, want)
	}
	res := run(t, o, n, diff.Options{Strategy: diff.Checksum, HashBatch: 1})
	if got, want := kinds(res), []string{"swap=modified"}; !slices.Equal(got, want) {
		t.Errorf("checksum: %q, want %q", got, want)
	}
	if d := res.Changes[0].New.Digest; !strings.HasPrefix(d, "sha256:") {
		t.Errorf("checksum change has no digest: %q", d)
	}
}

func TestHardlinks(t *testing.T) {
	f := func(s string) difftest.File { return difftest.File{Content: s} }
	l := func(s string) difftest.Hardlink { return difftest.Hardlink{Target: s} }
	old := difftest.Tree{
		"a": f("same"), "b": l("a"), // both change contents
		"c": f("s2"), "d": l("c"), // split apart with the same contents
		"e": f("s3"), "f": f("s3"), // joined
		"g": f("s4"), "h": l("g"), "i": l("g"), // i split off
		"k": f("s5"), "m": l("k"), // unchanged group
		"n": f("s6"), "o": l("n"), // o gets a new mode: n must come along
	}
	new := difftest.Tree{
		"a": f("changed"), "b": l("a"),
		"c": f("s2"), "d": f("s2"),
		"e": f("s3"), "f": l("e"),
		"g": f("s4"), "h": l("g"), "i": f("s4"),
		"k": f("s5"), "m": l("k"),
		"n": difftest.File{Content: "s6", Meta: difftest.Meta{Mode: 0o600}}, "o": l("n"),
	}
	_, _, o, n := pair(t, old, new)
	for _, s := range []diff.Strategy{diff.Rsync, diff.Checksum} {
		res := run(t, o, n, diff.Options{Strategy: s})
		want := []string{"a=modified", "b=modified", "d=modified", "f=modified", "i=modified", "n=metadata", "o=metadata"}
		if got := kinds(res); !slices.Equal(got, want) {
			t.Errorf("%s: changes %q, want %q", s, got, want)
		}
		var links []string
		for _, e := range res.Links {
			links = append(links, e.Path)
		}
		if want := []string{"e"}; !slices.Equal(links, want) {
			t.Errorf("%s: link names %q, want %q", s, links, want)
		}
	}
}

// faulty wraps a tree: Hash removes a file first, Tree hides a directory's contents and
// reports it as unreadable.
type faulty struct {
	source.Source
	dir        string
	vanish     string
	unreadable string
}

func (f *faulty) Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error) {
	if f.vanish != "" {
		os.Remove(filepath.Join(f.dir, f.vanish))
	}
	return f.Source.Hash(ctx, paths)
}

func (f *faulty) Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error) {
	res, err := f.Source.Tree(ctx, args, func(e *fsmeta.Entry) error {
		if f.unreadable != "" && strings.HasPrefix(e.Path, f.unreadable+"/") {
			return nil
		}
		return fn(e)
	})
	if f.unreadable != "" {
		res.Problems = append(res.Problems, wire.Problem{Path: f.unreadable, Err: "reading directory: permission denied"})
		res.ProblemsTotal++
	}
	return res, err
}

func TestProblems(t *testing.T) {
	old := difftest.Tree{"v/file": difftest.File{Content: "aaaa"}, "locked/a": difftest.File{Content: "1"},
		"locked/b": difftest.File{Content: "2"}, "other": difftest.File{Content: "o"}}
	new := difftest.Tree{"v/file": difftest.File{Content: "bbbb"}, "locked/a": difftest.File{Content: "1"},
		"locked/b": difftest.File{Content: "2"}, "other": difftest.File{Content: "p"}}
	_, newDir, o, n := pair(t, old, new)
	restore := func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(newDir, "v/file"), []byte("bbbb"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("vanished", func(t *testing.T) {
		defer restore(t)
		fn := &faulty{Source: n, dir: newDir, vanish: "v/file"}
		var seen []string
		res := run(t, o, fn, diff.Options{Strategy: diff.Checksum, OnError: func(p string, err error) error {
			seen = append(seen, p)
			return nil
		}})
		if got, want := kinds(res), []string{"other=modified"}; !slices.Equal(got, want) {
			t.Errorf("changes %q, want %q", got, want)
		}
		if len(res.Problems) != 1 || res.Problems[0].Path != "v/file" || res.Problems[0].Tree != "new" || !slices.Equal(seen, []string{"v/file"}) {
			t.Errorf("problems %+v, OnError saw %q", res.Problems, seen)
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		fn := &faulty{Source: n, unreadable: "locked"}
		res := run(t, o, fn, diff.Options{Strategy: diff.Checksum})
		if got, want := kinds(res), []string{"other=modified", "v/file=modified"}; !slices.Equal(got, want) {
			t.Errorf("changes %q, want %q: an unreadable directory must not be emptied", got, want)
		}
		if res.Stats.Problems != 1 || res.Stats.Deleted != 0 {
			t.Errorf("stats %+v", res.Stats)
		}
	})
	t.Run("strict", func(t *testing.T) {
		fn := &faulty{Source: n, unreadable: "locked"}
		_, err := diff.Trees(context.Background(), o, fn, diff.Options{Strategy: diff.Rsync, Strict: true})
		if !errors.Is(err, diff.ErrStrict) || !strings.Contains(err.Error(), `"locked"`) {
			t.Errorf("strict: got %v, want an error naming \"locked\"", err)
		}
	})
	t.Run("strict hash", func(t *testing.T) {
		defer restore(t)
		fn := &faulty{Source: n, dir: newDir, vanish: "v/file"}
		_, err := diff.Trees(context.Background(), o, fn, diff.Options{Strategy: diff.Checksum, Strict: true})
		if !errors.Is(err, diff.ErrStrict) || !strings.Contains(err.Error(), `"v/file"`) {
			t.Errorf("strict: got %v, want an error naming \"v/file\"", err)
		}
	})
}

func TestSELinux(t *testing.T) {
	testenv.RequireRoot(t) // security.* xattrs need CAP_SYS_ADMIN
	label := map[string]string{"security.selinux": "system_u:object_r:etc_t:s0"}
	old := difftest.Tree{"f": difftest.File{Content: "f"}}
	new := difftest.Tree{"f": difftest.File{Content: "f", Meta: difftest.Meta{Xattrs: label}}}
	_, _, o, n := pair(t, old, new)
	if got := kinds(run(t, o, n, diff.Options{})); len(got) != 0 {
		t.Errorf("SELinux label compared by default: %q", got)
	}
	res := run(t, o, n, diff.Options{KeepSELinux: true})
	if got := kinds(res); !slices.Equal(got, []string{"f=metadata"}) || res.Changes[0].New.Xattrs["security.selinux"] == nil {
		t.Errorf("KeepSELinux: %q", got)
	}
}

func TestBadStrategy(t *testing.T) {
	if _, err := diff.Trees(context.Background(), nil, nil, diff.Options{Strategy: "fast"}); err == nil {
		t.Error("unknown strategy accepted")
	}
}

// changedPaths returns the sorted set of paths of a result, deleted subtrees expanded.
func changedPaths(t *testing.T, res *diff.Result, oldDir string) []string {
	t.Helper()
	set := map[string]bool{}
	for _, c := range res.Changes {
		set[c.Path] = true
		if c.Kind == diff.Deleted || c.Kind == diff.DirReplaced || c.Kind == diff.TypeChanged {
			if c.Old.Type == fsmeta.TypeDir {
				for _, p := range walkPaths(t, filepath.Join(oldDir, c.Path)) {
					set[filepath.ToSlash(filepath.Join(c.Path, p))] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func walkPaths(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := fswalk.Walk(context.Background(), dir, fswalk.Options{Pseudo: fswalk.PseudoWalk}, func(e *fsmeta.Entry) error {
		if e.Path != "." {
			out = append(out, e.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ExampleTrees() {
	old, _ := source.OpenDir("/srv/base-root", "dir:/srv/base-root")
	vm, _ := source.OpenDir("/srv/vm-root", "dir:/srv/vm-root")
	res, err := diff.Trees(context.Background(), old, vm, diff.Options{Strategy: diff.Checksum})
	if err != nil {
		return
	}
	for _, c := range res.Changes {
		fmt.Println(c.Kind, c.Path)
	}
}

// noDelta hides a source's Delta method, so Trees computes deltas from its files.
type noDelta struct{ src source.Source }

func (n noDelta) Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error) {
	return n.src.Tree(ctx, args, fn)
}

func (n noDelta) Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error) {
	return n.src.Hash(ctx, paths)
}

func (n noDelta) Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error) {
	return n.src.Files(ctx, args)
}

func TestRdiff(t *testing.T) {
	big := make([]byte, 1<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	edited := slices.Clone(big)
	copy(edited[500000:], "a small edit in the middle of a big file")
	old := difftest.Tree{"big": difftest.File{Content: string(big)}, "small": difftest.File{Content: "tiny"}}
	new := difftest.Tree{"big": difftest.File{Content: string(edited)}, "small": difftest.File{Content: "tiny!"}}
	_, _, o, n := pair(t, old, new)
	for _, c := range []struct {
		name string
		new  diff.Tree
	}{{"agent delta", n}, {"local delta", noDelta{n}}} {
		t.Run(c.name, func(t *testing.T) {
			res := run(t, o, c.new, diff.Options{Strategy: diff.Rdiff})
			if got := kinds(res); !slices.Equal(got, []string{"big=modified", "small=modified"}) {
				t.Fatalf("changes %q", got)
			}
			d := res.Changes[0].DeltaBytes
			if d <= 0 || d >= int64(len(big))/10 || res.Stats.DeltaBytes != d || res.Changes[1].DeltaBytes != 0 {
				t.Errorf("delta of a 1 MiB file with a 40-byte edit: %d bytes (stats %d, small file %d)",
					d, res.Stats.DeltaBytes, res.Changes[1].DeltaBytes)
			}
			t.Logf("delta %d bytes for a %d-byte file", d, len(big))
		})
	}
}
