package pkgmgr

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"

	"github.com/vm2image/vm2image/internal/rootfs"
)

// sharedRPMDBs are the real rpmdbs in the shared testdata, one per backend,
// with their oracle files ("NAME EPOCH:VERSION-RELEASE ARCH", sorted).
var sharedRPMDBs = []struct {
	name, db, expected string
	backend            string // rpm's _db_backend to read a copy with; "" when Debian's rpm cannot
}{
	{"bdb", "rpmdb/bdb-libuuid/Packages", "rpmdb/bdb-libuuid/expected-rpm-qa.txt", "bdb_ro"},
	{"ndb", "rpmdb/ndb-sle15-bci/Packages.db", "rpmdb/ndb-sle15-bci/expected-listed.txt", ""},
	{"sqlite", "rpmdb/sqlite-cbl-mariner-2.0/rpmdb.sqlite", "rpmdb/sqlite-cbl-mariner-2.0/expected-rpm-qa.txt", "sqlite"},
}

func TestReadRPMShared(t *testing.T) {
	for _, s := range sharedRPMDBs {
		t.Run(s.name, func(t *testing.T) {
			path := requireShared(t, s.db)
			expected, err := os.ReadFile(requireShared(t, s.expected))
			if err != nil {
				t.Fatal(err)
			}
			before := dirNames(t, filepath.Dir(path))
			pkgs, err := readRPMDB(path)
			if err != nil {
				t.Fatal(err)
			}
			checkDB(t, &DB{Manager: RPM, Packages: pkgs}, RPM)
			want := strings.Split(strings.TrimSpace(string(expected)), "\n")
			if diff := cmp.Diff(want, nevraLines(pkgs)); diff != "" {
				t.Errorf("packages differ from %s (-want +got):\n%s", s.expected, diff)
			}
			if diff := cmp.Diff(before, dirNames(t, filepath.Dir(path))); diff != "" {
				t.Errorf("reading wrote beside the rpmdb (-before +after):\n%s", diff)
			}
		})
	}
}

// TestReadRPMSharedEdges compares every edge of the shared Berkeley DB and
// SQLite rpmdbs with what Debian's rpm prints for a copy of them.
func TestReadRPMSharedEdges(t *testing.T) {
	testenv.RequireCommands(t, "rpm")
	for _, s := range sharedRPMDBs {
		if s.backend == "" {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			src := requireShared(t, s.db)
			root := t.TempDir()
			dst := filepath.Join(root, "var/lib/rpm", filepath.Base(src))
			copyFile(t, src, dst)
			db, err := ReadRPM(root)
			if err != nil {
				t.Fatal(err)
			}
			compareRPMEdges(t, db, rpmOracleEdges(t, root, "--define", "_db_backend "+s.backend))
		})
	}
}

func TestReadRPMSharedSpotChecks(t *testing.T) {
	pkgs, err := readRPMDB(requireShared(t, "rpmdb/sqlite-cbl-mariner-2.0/rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	audit := findPackage(t, pkgs, "audit")
	wantDep := Dep{Kind: Depends, Alts: []Relation{{Name: "audit-libs", Op: "=", Version: "3.0.6-1.cm2"}}}
	if !containsDep(audit.Depends, wantDep) || audit.Source != "audit" || audit.Auto != nil {
		t.Errorf("audit = %+v, want a dependency %+v, source audit, Auto nil", audit, wantDep)
	}
	// Epoch 1 shows in Version, as rpm -q prints it.
	if ca := findPackage(t, pkgs, "ca-certificates-base"); ca.Version != "1:2.0.0-1.cm2" || ca.Epoch != 1 {
		t.Errorf("ca-certificates-base version %q epoch %d", ca.Version, ca.Epoch)
	}
	// File requires resolve through the file lists: audit requires /bin/sh.
	var shProviders []string
	for _, p := range pkgs {
		for _, r := range p.Provides {
			if r.Name == "/bin/sh" {
				shProviders = append(shProviders, p.Name)
			}
		}
	}
	if len(shProviders) == 0 {
		t.Errorf("no package provides /bin/sh")
	}
}

// rpmSpecs are three tiny packages: a requires b (versioned, a virtual name
// b provides, a file b owns) and c (Requires(pre) and Recommends); a has an
// epoch.
var rpmSpecs = map[string]string{
	"vmtest-a": `Name: vmtest-a
Version: 1.0
Release: 1
Epoch: 2
Summary: vm2image test package a
License: MIT
BuildArch: noarch
Requires: vmtest-b >= 1.1
Requires: vmtest-virtual
Requires: /usr/bin/vmtest-b-tool
Requires(pre): vmtest-c
Recommends: vmtest-c > 0.0
%description
Test package a.
%files
`,
	"vmtest-b": `Name: vmtest-b
Version: 1.2
Release: 3
Summary: vm2image test package b
License: MIT
BuildArch: noarch
Provides: vmtest-virtual = 3.0
AutoReqProv: no
%description
Test package b.
%install
mkdir -p %{buildroot}/usr/bin
echo hello > %{buildroot}/usr/bin/vmtest-b-tool
%files
/usr/bin/vmtest-b-tool
`,
	"vmtest-c": `Name: vmtest-c
Version: 0.1
Release: 1.el9
Summary: vm2image test package c
License: MIT
BuildArch: noarch
Provides: libvmtest.so.1()(64bit)
%description
Test package c.
%files
`,
}

// TestReadRPMBuilt builds RPMs, installs them into a scratch root with
// Debian's rpm (database only, no scripts) and compares ReadRPM with rpm -qa.
func TestReadRPMBuilt(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "rpm", "rpmbuild")
	work := t.TempDir()
	var rpms []string
	for name, spec := range rpmSpecs {
		rpms = append(rpms, buildRPM(t, work, name, spec))
	}
	root := filepath.Join(work, "root")
	args := append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--justdb", "--noscripts", "--notriggers"}, rpms...)
	if out, err := exec.Command("rpm", args...).CombinedOutput(); err != nil {
		t.Fatalf("rpm -i: %v\n%s", err, out)
	}
	dbDir := filepath.Join(root, "var/lib/rpm")
	before := dirNames(t, dbDir)
	db, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	checkDB(t, db, RPM)
	want := commandLines(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-qa",
		"--qf", "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH}\n")
	sort.Strings(want)
	if diff := cmp.Diff(want, nevraLines(db.Packages)); diff != "" {
		t.Errorf("packages differ from rpm -qa (-want +got):\n%s", diff)
	}
	compareRPMEdges(t, db, rpmOracleEdges(t, root))
	a := findPackage(t, db.Packages, "vmtest-a")
	for _, d := range []Dep{
		{Kind: Depends, Alts: []Relation{{Name: "vmtest-b", Op: ">=", Version: "1.1"}}},
		{Kind: Depends, Alts: []Relation{{Name: "vmtest-virtual"}}},
		{Kind: Depends, Alts: []Relation{{Name: "/usr/bin/vmtest-b-tool"}}},
		{Kind: Depends, Alts: []Relation{{Name: "vmtest-c"}}},
		{Kind: Recommends, Alts: []Relation{{Name: "vmtest-c", Op: ">", Version: "0.0"}}},
	} {
		if !containsDep(a.Depends, d) {
			t.Errorf("vmtest-a lacks %+v; has %+v", d, a.Depends)
		}
	}
	if a.Version != "2:1.0-1" || a.Epoch != 2 || a.UpstreamVersion != "1.0" || a.Release != "1" {
		t.Errorf("vmtest-a version fields: %+v", a)
	}
	b := findPackage(t, db.Packages, "vmtest-b")
	for _, r := range []Relation{{Name: "vmtest-virtual", Op: "=", Version: "3.0"}, {Name: "/usr/bin/vmtest-b-tool"}} {
		if !containsRelation(b.Provides, r) {
			t.Errorf("vmtest-b lacks provide %+v; has %+v", r, b.Provides)
		}
	}
	if diff := cmp.Diff(before, dirNames(t, dbDir)); diff != "" {
		t.Errorf("reading wrote beside the rpmdb (-before +after):\n%s", diff)
	}
}

func buildRPM(t *testing.T, work, name, spec string) string {
	t.Helper()
	top := filepath.Join(work, "top-"+name)
	specPath := filepath.Join(work, name+".spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("rpmbuild", "--define", "_topdir "+top, "--define", "_tmppath "+filepath.Join(work, "tmp"),
		"--define", "_build_id_links none", "-bb", specPath)
	cmd.Env = append(os.Environ(), "HOME="+work) // no ~/.rpmmacros of the user
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild %s: %v\n%s", name, err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", name+"-*.rpm"))
	if len(matches) != 1 {
		t.Fatalf("rpmbuild %s produced %v", name, matches)
	}
	return matches[0]
}

// rpmOracleEdges lists what rpm prints of each package's requires (R),
// recommends (W) and provides (P), without rpmlib() requires, deduplicated.
func rpmOracleEdges(t *testing.T, root string, extra ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, q := range []struct{ kind, tag string }{{"R", "REQUIRE"}, {"W", "RECOMMEND"}, {"P", "PROVIDE"}} {
		qf := fmt.Sprintf("[%%{=NAME}\t%%{%[1]sNAME}\t%%{%[1]sFLAGS:depflags}\t%%{%[1]sVERSION}\t%%{%[1]sFLAGS}\n]", q.tag)
		args := append(append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, extra...), "-qa", "--qf", qf)
		for _, l := range commandLines(t, "rpm", args...) {
			f := strings.Split(l, "\t")
			if len(f) != 5 || f[1] == "(none)" {
				continue
			}
			var flags int64
			fmt.Sscan(f[4], &flags)
			if q.kind == "R" && (flags&senseRPMLib != 0 || strings.HasPrefix(f[1], "rpmlib(")) {
				continue
			}
			out[strings.Join([]string{f[0], q.kind, f[1], strings.TrimSpace(f[2]), f[3]}, " ")] = true
		}
	}
	return out
}

// compareRPMEdges checks that our edges are rpm's, plus only the file
// provides ReadRPM derives from file lists.
func compareRPMEdges(t *testing.T, db *DB, oracle map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	var fileProvides []string
	for _, p := range db.Packages {
		for _, d := range p.Depends {
			kind := map[DepKind]string{Depends: "R", Recommends: "W"}[d.Kind]
			got[strings.Join([]string{p.Name, kind, d.Alts[0].Name, d.Alts[0].Op, d.Alts[0].Version}, " ")] = true
		}
		for _, r := range p.Provides {
			line := strings.Join([]string{p.Name, "P", r.Name, r.Op, r.Version}, " ")
			if !oracle[line] && strings.HasPrefix(r.Name, "/") && r.Op == "" {
				fileProvides = append(fileProvides, line)
				continue
			}
			got[line] = true
		}
	}
	if diff := cmp.Diff(sortedKeys(oracle), sortedKeys(got)); diff != "" {
		t.Errorf("edges differ from rpm's (-rpm +ours):\n%s", diff)
	}
	t.Logf("%d edges match rpm's; %d file provides derived from file lists", len(got), len(fileProvides))
}

func TestReadRPMWAL(t *testing.T) {
	blob := testHeader(t, "walpkg", "1.0", "1")
	dir := t.TempDir()
	path := filepath.Join(dir, "rpmdb.sqlite")
	writer, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	writer.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA journal_mode=WAL", "PRAGMA wal_autocheckpoint=0",
		"CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"} {
		if _, err := writer.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := writer.Exec("INSERT INTO Packages (blob) VALUES (?)", blob); err != nil {
		t.Fatal(err)
	}
	// The insert sits in the WAL, not yet in the main file, while the
	// writer is open: as when rpm or dnf is running.
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("want a non-empty WAL: %v", err)
	}
	if !strings.Contains(sqliteDSN(path), "mode=ro") {
		t.Errorf("DSN %s: want mode=ro with a non-empty WAL", sqliteDSN(path))
	}
	pkgs, err := readRPMDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].Name != "walpkg" {
		t.Errorf("read %+v, want walpkg from the WAL", pkgs)
	}
	// Read from a root, the database and its WAL are copied to a private directory first.
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "var/lib/rpm")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRPM(root); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("ReadRPM through a link to a host directory: %v, want ErrNoDatabase", err)
	}
	if err := os.Remove(filepath.Join(root, "var/lib/rpm")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, filepath.Join(root, "var/lib/rpm")); err != nil {
		t.Fatal(err)
	}
	db, err := ReadRPM(root)
	if err != nil || len(db.Packages) != 1 || db.Packages[0].Name != "walpkg" {
		t.Errorf("ReadRPM from a root: %+v, %v; want walpkg from the WAL", db, err)
	}
}

func TestFindRPMDB(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"var/lib/rpm/Packages":                 "old",
		"var/lib/rpm/rpmdb.sqlite":             "new",
		"usr/lib/sysimage/rpm/Packages.db":     "newest location",
		"usr/lib/sysimage/rpm/unrelated-index": "",
	})
	r, err := rootfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := findRPMDB(r)
	if want := "usr/lib/sysimage/rpm/Packages.db"; err != nil || got != want {
		t.Errorf("findRPMDB = %q, %v; want %q", got, err, want)
	}
	os.RemoveAll(filepath.Join(root, "usr"))
	got, err = findRPMDB(r)
	if want := "var/lib/rpm/rpmdb.sqlite"; err != nil || got != want {
		t.Errorf("findRPMDB = %q, %v; want %q", got, err, want)
	}
	if _, err := ReadRPM(t.TempDir()); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("ReadRPM(empty) error = %v", err)
	}
}

func TestParseRPMHeader(t *testing.T) {
	blob := testHeader(t, "x", "1", "2")
	h, err := parseRPMHeader(blob)
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := rpmPackage(h)
	if err != nil || pkg.Name != "x" || pkg.Version != "1-2" {
		t.Fatalf("rpmPackage = %+v, %v", pkg, err)
	}
	for name, b := range map[string][]byte{
		"empty":      nil,
		"truncated":  blob[:len(blob)-1],
		"no tags":    make([]byte, 8),
		"huge count": append([]byte{0xff, 0xff, 0xff, 0xff}, blob[4:]...),
		"bad offset": patchUint32(blob, 8+8, 1<<20),
		// NAME is the first index entry: type at 8+4, count at 8+12.
		"not a string": patchUint32(blob, 8+4, typeInt32),
		"string count": patchUint32(patchUint32(blob, 8+4, typeStringArray), 8+12, 1<<20),
		"unterminated": blob[: len(blob)-1 : len(blob)-1],
	} {
		h, err := parseRPMHeader(b)
		if err == nil {
			_, err = rpmPackage(h)
		}
		if !errors.Is(err, errBadHeader) {
			t.Errorf("%s: error = %v, want errBadHeader", name, err)
		}
	}
}

func TestSourceRPMName(t *testing.T) {
	for in, want := range map[string]string{
		"bash-5.1.8-1.cm2.src.rpm":           "bash",
		"util-linux-2.32.1-42.el8_8.src.rpm": "util-linux",
		"x-1-1.nosrc.rpm":                    "x",
		"":                                   "",
		"(none)":                             "",
		"weird.src.rpm":                      "",
	} {
		if got := sourceRPMName(in); got != want {
			t.Errorf("sourceRPMName(%q) = %q, want %q", in, got, want)
		}
	}
}

// testHeader builds a minimal rpm header blob with NAME, VERSION, RELEASE.
func testHeader(t testing.TB, name, version, release string) []byte {
	t.Helper()
	var data []byte
	var index []byte
	for _, e := range []struct {
		tag uint32
		val string
	}{{tagName, name}, {tagVersion, version}, {tagRelease, release}} {
		index = binary.BigEndian.AppendUint32(index, e.tag)
		index = binary.BigEndian.AppendUint32(index, typeString)
		index = binary.BigEndian.AppendUint32(index, uint32(len(data)))
		index = binary.BigEndian.AppendUint32(index, 1)
		data = append(append(data, e.val...), 0)
	}
	blob := binary.BigEndian.AppendUint32(nil, uint32(len(index)/16))
	blob = binary.BigEndian.AppendUint32(blob, uint32(len(data)))
	return append(append(blob, index...), data...)
}

func patchUint32(b []byte, off int, v uint32) []byte {
	c := append([]byte(nil), b...)
	binary.BigEndian.PutUint32(c[off:], v)
	return c
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func findPackage(t *testing.T, pkgs []Package, name string) Package {
	t.Helper()
	for _, p := range pkgs {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("package %s not found", name)
	return Package{}
}

func containsDep(deps []Dep, d Dep) bool {
	for _, x := range deps {
		if cmp.Equal(x, d) {
			return true
		}
	}
	return false
}

func containsRelation(rels []Relation, r Relation) bool {
	for _, x := range rels {
		if x == r {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
