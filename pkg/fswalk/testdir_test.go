//go:build linux

package fswalk

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"golang.org/x/sys/unix"
)

// A TestDir describes a tree to build: names map to nodes.
type TestDir map[string]any

// Node kinds of a TestDir. Zero modes mean 0644 for files and 0755 for directories.
type (
	TestFile struct {
		Content  string
		Mode     os.FileMode // permission bits and setuid/setgid/sticky
		ZeroMode bool        // Mode 0 for real
		Owner    *[2]int     // uid, gid (root only)
		Xattrs   map[string]string
		Caps     string // argument of setcap, e.g. "cap_net_raw+ep" (root only)
	}
	TestDirMode struct {
		Mode    os.FileMode
		Entries TestDir
		Owner   *[2]int
		Xattrs  map[string]string
	}
	TestSymlink  struct{ Target string }
	TestHardlink struct{ Target string } // slash path from the tree's root of an earlier file
	TestFIFO     struct{}
	TestSocket   struct{}
	TestDevice   struct {
		Block        bool
		Major, Minor uint32
	}
	TestSparse struct {
		Size int64
		Tail string // written at Size-len(Tail)
	}
)

// mtime is given to everything built, to test mtime round trips.
var testMTime = time.Unix(1_600_000_000, 123456789)

// BuildTree creates dir's entries in dir. Hard links are made after everything else, in the
// order of their paths; directory modes are applied last, deepest first.
func BuildTree(t testing.TB, dir string, tree TestDir) {
	t.Helper()
	var links [][2]string
	var dirModes [][2]any
	buildTree(t, dir, "", tree, &links, &dirModes)
	sort.Slice(links, func(i, j int) bool { return links[i][0] < links[j][0] })
	for _, l := range links {
		if err := os.Link(filepath.Join(dir, l[1]), filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(dirModes) - 1; i >= 0; i-- {
		p, m := dirModes[i][0].(string), dirModes[i][1].(os.FileMode)
		if err := unix.Chmod(p, fileModeBits(m)); err != nil {
			t.Fatal(err)
		}
		setMTime(t, p)
	}
}

func buildTree(t testing.TB, dir, rel string, tree TestDir, links *[][2]string, dirModes *[][2]any) {
	t.Helper()
	names := make([]string, 0, len(tree))
	for n := range tree {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		r := strings.TrimPrefix(rel+"/"+name, "/")
		switch n := tree[name].(type) {
		case TestFile:
			buildFile(t, p, n)
		case TestDir:
			mkdir(t, p)
			buildTree(t, p, r, n, links, dirModes)
			*dirModes = append(*dirModes, [2]any{p, os.FileMode(0755)})
		case TestDirMode:
			mkdir(t, p)
			buildTree(t, p, r, n.Entries, links, dirModes)
			applyOwnerXattrs(t, p, n.Owner, n.Xattrs)
			*dirModes = append(*dirModes, [2]any{p, n.Mode})
		case TestSymlink:
			check(t, os.Symlink(n.Target, p))
			check(t, unix.Lutimes(p, []unix.Timeval{unix.NsecToTimeval(testMTime.UnixNano()), unix.NsecToTimeval(testMTime.UnixNano())}))
		case TestHardlink:
			*links = append(*links, [2]string{r, n.Target})
		case TestFIFO:
			check(t, unix.Mkfifo(p, 0640))
			setMTime(t, p)
		case TestSocket:
			buildSocket(t, p)
		case TestDevice:
			testenv.RequireRoot(t)
			mode := uint32(unix.S_IFCHR | 0660)
			if n.Block {
				mode = unix.S_IFBLK | 0660
			}
			check(t, unix.Mknod(p, mode, int(unix.Mkdev(n.Major, n.Minor))))
			setMTime(t, p)
		case TestSparse:
			f, err := os.Create(p)
			check(t, err)
			check(t, f.Truncate(n.Size))
			_, err = f.WriteAt([]byte(n.Tail), n.Size-int64(len(n.Tail)))
			check(t, err)
			check(t, f.Close())
			setMTime(t, p)
		default:
			t.Fatalf("unknown node %T at %s", n, p)
		}
	}
}

func buildFile(t testing.TB, p string, n TestFile) {
	t.Helper()
	check(t, os.WriteFile(p, []byte(n.Content), 0600))
	applyOwnerXattrs(t, p, n.Owner, n.Xattrs)
	mode := n.Mode
	if mode == 0 && !n.ZeroMode {
		mode = 0644
	}
	// chown clears setuid bits and capabilities: chmod and setcap come after it.
	check(t, unix.Chmod(p, fileModeBits(mode)))
	if n.Caps != "" {
		testenv.RequireRoot(t)
		testenv.RequireCommands(t, "setcap")
		if out, err := exec.Command("setcap", n.Caps, p).CombinedOutput(); err != nil {
			t.Fatalf("setcap: %v: %s", err, out)
		}
	}
	setMTime(t, p)
}

func applyOwnerXattrs(t testing.TB, p string, owner *[2]int, xattrs map[string]string) {
	t.Helper()
	if owner != nil {
		testenv.RequireRoot(t)
		check(t, os.Lchown(p, owner[0], owner[1]))
	}
	for k, v := range xattrs {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			if err == unix.ENOTSUP {
				testenv.Skip(t, "the temp filesystem has no xattrs")
			}
			t.Fatalf("setxattr %s on %s: %v", k, p, err)
		}
	}
}

// buildSocket leaves a unix socket file at p (through a short relative name: sun_path is small).
func buildSocket(t testing.TB, p string) {
	t.Helper()
	old, err := os.Getwd()
	check(t, err)
	check(t, os.Chdir(filepath.Dir(p)))
	defer func() { check(t, os.Chdir(old)) }()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Base(p), Net: "unix"})
	check(t, err)
	l.SetUnlinkOnClose(false)
	check(t, l.Close())
	setMTime(t, p)
}

func mkdir(t testing.TB, p string) {
	t.Helper()
	check(t, os.Mkdir(p, 0700))
}

func setMTime(t testing.TB, p string) {
	t.Helper()
	ts := unix.NsecToTimespec(testMTime.UnixNano())
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
}

func fileModeBits(m os.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		b |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		b |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		b |= unix.S_ISVTX
	}
	return b
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// trickyTree builds, as root, a tree with every kind of entry and name that a VM may hold.
func trickyTree(t testing.TB) string {
	t.Helper()
	testenv.RequireRoot(t)
	dir := t.TempDir()
	owner := &[2]int{1234, 5678}
	BuildTree(t, dir, TestDir{
		"bin": TestDir{
			"ping":  TestFile{Content: "ping binary", Mode: 0755, Caps: "cap_net_raw+ep"},
			"su":    TestFile{Content: "su binary", Mode: 0755 | os.ModeSetuid},
			"wall":  TestFile{Content: "wall", Mode: 0755 | os.ModeSetgid, Owner: &[2]int{0, 5}},
			"empty": TestFile{},
		},
		"etc": TestDir{
			"passwd":    TestFile{Content: "root:x:0:0::/root:/bin/sh\n"},
			"shadow":    TestFile{Content: "root:*:1::::::\n", ZeroMode: true},
			"owned":     TestFile{Content: "mine", Owner: owner, Xattrs: map[string]string{"user.note": "hello", "user.bin": "\x00\x01\xff"}},
			"localtime": TestSymlink{Target: "/usr/share/zoneinfo/UTC"},
			"rel":       TestSymlink{Target: "../bin/su"},
			"dangling":  TestSymlink{Target: "does/not/exist"},
			"escape":    TestSymlink{Target: "../../../../../../etc"},
		},
		"links": TestDir{
			"a":  TestFile{Content: "shared by two"},
			"b":  TestHardlink{Target: "links/a"},
			"t1": TestFile{Content: "shared by three", Xattrs: map[string]string{"user.t": "3"}},
			"t2": TestHardlink{Target: "links/t1"},
			"t3": TestHardlink{Target: "bin/../links/t1"},
		},
		"dev": TestDir{
			"null": TestDevice{Major: 1, Minor: 3},
			"sda":  TestDevice{Block: true, Major: 8, Minor: 0},
			"fifo": TestFIFO{},
			"sock": TestSocket{},
		},
		"modes": TestDir{
			"sticky":   TestDirMode{Mode: 0777 | os.ModeSticky, Entries: TestDir{"f": TestFile{Content: "x"}}},
			"locked":   TestDirMode{Mode: 0, Entries: TestDir{"inside": TestFile{Content: "hidden"}}},
			"readonly": TestDirMode{Mode: 0555, Owner: owner, Xattrs: map[string]string{"user.dir": "d"}},
		},
		"names": TestDir{
			"with space":             TestFile{Content: "s"},
			"new\nline":              TestFile{Content: "n"},
			"bad\xff\xfeutf8":        TestFile{Content: "b"},
			"ünïcödé":                TestFile{Content: "u"},
			"tab\there":              TestFile{Content: "t"},
			"back\\slash":            TestFile{Content: "b"},
			strings.Repeat("x", 255): TestFile{Content: "long name"},
		},
		"deep": TestDir{
			"a": TestDir{"proc": TestDir{"x": TestFile{Content: "not a mount"}}, "sys": TestDir{"y": TestFile{Content: "nor this"}}},
		},
		"sparse": TestSparse{Size: 100 << 20, Tail: "the end"},
	})
	buildDeep(t, dir, 15)
	return dir
}

// buildDeep makes a path of n components of 255 bytes under dir/long, ending in a file.
func buildDeep(t testing.TB, dir string, n int) {
	t.Helper()
	r, err := os.OpenRoot(dir)
	check(t, err)
	defer r.Close()
	parts := []string{"long"}
	for i := 0; i < n; i++ {
		parts = append(parts, strings.Repeat(string(rune('a'+i)), 255))
	}
	rel := strings.Join(parts, "/")
	check(t, r.MkdirAll(rel, 0755))
	check(t, r.WriteFile(rel+"/end", []byte("deep"), 0644))
}
