package layer_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/layer"
)

type (
	F  = difftest.File
	D  = difftest.Dir
	L  = difftest.Symlink
	HL = difftest.Hardlink
	M  = difftest.Meta
)

// rtCase is one tricky pair of trees. Every case's paths live under its own directory, so the
// cases also combine into one pair of trees (for the Docker engine, which is slower).
type rtCase struct {
	name     string
	old, new difftest.Tree
	strategy diff.Strategy
	// mtimeFree are paths (relative to the case) whose new mtime the layer does not carry.
	mtimeFree []string
	// notInLayer are paths (relative to the case) that must not be in the layer.
	notInLayer []string
}

// roundTripCases returns the cases, with a path of longLen bytes in the "long" case.
func roundTripCases(longLen int) []rtCase {
	later := difftest.MTime.Add(time.Hour)
	long := difftest.LongPath("deep", longLen)
	return []rtCase{
		{name: "file-to-dir", old: difftest.Tree{"x": F{Content: "file"}, "keep": F{Content: "k"}},
			new: difftest.Tree{"x/inner": F{Content: "in"}, "keep": F{Content: "k"}}},
		{name: "dir-to-symlink", old: difftest.Tree{"d/a": F{Content: "a"}, "d/b/c": F{Content: "c"}, "t": F{Content: "t"}},
			new: difftest.Tree{"d": L{Target: "t"}, "t": F{Content: "t"}}},
		{name: "symlink-to-dir", old: difftest.Tree{"s": L{Target: "elsewhere"}, "f": F{Content: "f"}},
			new: difftest.Tree{"s/x": F{Content: "x"}, "f": difftest.FIFO{}}},
		{name: "deleted-dir", old: difftest.Tree{"gone/a": F{Content: "a"}, "gone/sub/b": F{Content: "b"}, "keep": F{Content: "k"}},
			new: difftest.Tree{"keep": F{Content: "k"}}},
		{name: "replaced-dir", old: difftest.Tree{"r/a": F{Content: "a"}, "r/b/c": F{Content: "c"}, "r/z": L{Target: "a"}},
			new: difftest.Tree{"r/new": F{Content: "n"}, "r/q/x": F{Content: "x"}}},
		{name: "replaced-partly", old: difftest.Tree{"r/a": F{Content: "a"}, "r/b/c": F{Content: "c"}},
			new: difftest.Tree{"r/b": F{Content: "now a file"}}},
		{name: "hardlinks", old: difftest.Tree{
			"a": F{Content: "shared"}, "b": HL{Target: "a"}, // a gets new contents alone
			"c": F{Content: "pair"}, "d": HL{Target: "c"}, // both names change
			"e": F{Content: "join"}, "f": F{Content: "join"}, // joined
			"g": F{Content: "grow"}, "h": HL{Target: "g"}}, // a third name is added
			new: difftest.Tree{
				"a": F{Content: "changed"}, "b": F{Content: "shared"},
				"c": F{Content: "pair changed"}, "d": HL{Target: "c"},
				"e": F{Content: "join"}, "f": HL{Target: "e"},
				"g": F{Content: "grow"}, "h": HL{Target: "g"}, "i": HL{Target: "g"}}},
		{name: "xattrs", old: difftest.Tree{"u": F{Content: "u", Meta: M{Xattrs: map[string]string{"user.a": "1"}}}, "cap": F{Content: "bin"}},
			new: difftest.Tree{"u": F{Content: "u", Meta: M{Xattrs: map[string]string{"user.a": "2", "user.b": "x"}}},
				"cap": F{Content: "bin", Caps: "cap_net_raw+ep"}, "newcap": F{Content: "nb", Caps: "cap_net_bind_service=+ep", Meta: M{Mode: 0o755}}}},
		{name: "devices", old: difftest.Tree{"null": difftest.Device{Major: 1, Minor: 3}, "keep": F{Content: "k"}},
			new: difftest.Tree{"null": difftest.Device{Major: 1, Minor: 5}, "blk": difftest.Device{Block: true, Major: 7, Minor: 0},
				"fifo": difftest.FIFO{}, "keep": F{Content: "k"}}},
		{name: "names", old: difftest.Tree{"with space": F{Content: "1"}, "gone\nline": F{Content: "2"}, "keep": F{Content: "k"}},
			new: difftest.Tree{"with space": F{Content: "1!"}, "new\nline": F{Content: "3"}, "bad\xff\xfe name": F{Content: "4"},
				"dir\xc3(": D{}, "dir\xc3(/in side": F{Content: "5"}, "keep": F{Content: "k"}}},
		{name: "long", old: difftest.Tree{"keep": F{Content: "k"}},
			new: difftest.Tree{long: F{Content: "deep down"}, "keep": F{Content: "k"}}},
		{name: "sparse", old: difftest.Tree{"keep": F{Content: "k"}},
			new: difftest.Tree{"sparse": F{Content: "tail", Sparse: 16 << 20}, "keep": F{Content: "k"}}},
		{name: "metadata", strategy: diff.Checksum,
			old: difftest.Tree{"mode": F{Content: "m"}, "owner": F{Content: "o"}, "touch": F{Content: "t"},
				"suid": F{Content: "s", Meta: M{Mode: 0o755}}, "dir": D{Meta: M{Mode: 0o755}}, "dir/f": F{Content: "f"}},
			new: difftest.Tree{"mode": F{Content: "m", Meta: M{Mode: 0o600}}, "owner": F{Content: "o", Meta: M{Owner: &difftest.Owner{UID: 1001, GID: 1002}}},
				"touch": F{Content: "t", Meta: M{MTime: later}}, "suid": F{Content: "s", Meta: M{Mode: 0o4755}},
				"dir": D{Meta: M{Mode: 0o1777, Owner: &difftest.Owner{UID: 5, GID: 6}}}, "dir/f": F{Content: "f"}},
			mtimeFree: []string{"touch"}, notInLayer: []string{"touch", "dir/f"}},
		{name: "deep-delete", old: difftest.Tree{"a/b/c/gone": F{Content: "g"}, "a/b/c/keep": F{Content: "k"}, "a/x": F{Content: "x"}},
			new: difftest.Tree{"a/b/c/keep": F{Content: "k"}, "a/x": F{Content: "x"}}},
	}
}

// prefixed returns the tree with every path under dir.
func prefixed(dir string, tree difftest.Tree) difftest.Tree {
	out := difftest.Tree{}
	for p, n := range tree {
		if h, ok := n.(HL); ok {
			n = HL{Target: dir + "/" + h.Target}
		}
		out[dir+"/"+p] = n
	}
	return out
}

func buildPair(t *testing.T, old, new difftest.Tree) (string, string) {
	t.Helper()
	base := t.TempDir()
	oldDir, newDir := filepath.Join(base, "old"), filepath.Join(base, "new")
	for _, d := range []string{oldDir, newDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	difftest.Build(t, oldDir, old)
	difftest.Build(t, newDir, new)
	return oldDir, newDir
}

func caseCompareOpts(prefix string, c rtCase) compareOpts {
	free := map[string]bool{}
	for _, p := range c.mtimeFree {
		free[prefix+p] = true
	}
	return compareOpts{ignoreMTime: func(p string) bool { return free[p] }}
}

// TestRoundTripUmoci applies each case's layer to its old tree with umoci and compares the
// result with the new tree.
func TestRoundTripUmoci(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "umoci", "setcap")
	for _, c := range roundTripCases(4000) {
		t.Run(c.name, func(t *testing.T) {
			oldDir, newDir := buildPair(t, prefixed(c.name, c.old), prefixed(c.name, c.new))
			layerFile, _, st := buildLayer(t, oldDir, newDir, diff.Options{Strategy: c.strategy}, layer.Options{})
			checkNotInLayer(t, layerFile, c)
			root := umociApply(t, treeTar(t, oldDir), layerFile)
			compareTrees(t, root, newDir, caseCompareOpts(c.name+"/", c))
			t.Logf("%d entries, %d whiteouts, %d opaques, %d bytes", st.Entries, st.Whiteouts, st.Opaques, st.Bytes)
		})
	}
}

// TestRoundTripDocker applies all the cases at once with the Docker engine: docker load of an
// image of the old tree plus the layer, docker export of a container, GNU tar to unpack.
func TestRoundTripDocker(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "setcap", "tar")
	testenv.RequireDocker(t)
	old, new := difftest.Tree{}, difftest.Tree{}
	var free []string
	// The engine applies layers under /var/lib/docker/overlay2/<id>/diff/ with absolute paths:
	// 100 bytes of its own leave 3.9 KB of PATH_MAX to ours.
	for _, c := range roundTripCases(3900) {
		for p, n := range prefixed(c.name, c.old) {
			old[p] = n
		}
		for p, n := range prefixed(c.name, c.new) {
			new[p] = n
		}
		for _, p := range c.mtimeFree {
			free = append(free, c.name+"/"+p)
		}
	}
	oldDir, newDir := buildPair(t, old, new)
	layerFile, _, _ := buildLayer(t, oldDir, newDir, diff.Options{Strategy: diff.Checksum}, layer.Options{})
	root := dockerApply(t, treeTar(t, oldDir), layerFile)
	// The engine adds its own files and mount points; its export carries no xattrs but
	// security.capability, and mtimes in whole seconds.
	added := map[string]bool{".dockerenv": true, "dev": true, "proc": true, "sys": true, "etc": true}
	compareTrees(t, root, newDir, compareOpts{
		ignore:      func(p string) bool { return added[p] },
		ignoreMTime: func(p string) bool { return contains(free, p) },
		xattrs:      func(name string) bool { return name == "security.capability" },
		mtimeSecs:   true,
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkNotInLayer(t *testing.T, layerFile string, c rtCase) {
	t.Helper()
	for _, h := range tarEntries(t, layerFile) {
		for _, p := range c.notInLayer {
			if strings.TrimSuffix(h.Name, "/") == c.name+"/"+p {
				t.Errorf("layer holds %q", h.Name)
			}
		}
	}
}
