package pkgmgr

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadAPKShared reads the real Alpine 3.14 database and checks it
// against an independent reading of its lines and of etc/apk/world.
func TestReadAPKShared(t *testing.T) {
	root := requireShared(t, "apk/alpine-3.14-armv7")
	db, err := ReadAPK(root)
	if err != nil {
		t.Fatal(err)
	}
	checkDB(t, db, APK)
	raw, err := os.ReadFile(filepath.Join(root, apkInstalledPath))
	if err != nil {
		t.Fatal(err)
	}
	worldRaw, err := os.ReadFile(filepath.Join(root, apkWorldPath))
	if err != nil {
		t.Fatal(err)
	}
	world := map[string]bool{}
	for _, w := range strings.Fields(string(worldRaw)) {
		world[w] = true
	}
	// The oracle: one line per block from its P:, V:, A: and I: lines, the
	// world file for auto, and the counts of D: (conflicts aside) and p: words.
	var want []string
	var deps, provides int
	for _, block := range strings.Split(strings.TrimSpace(string(raw)), "\n\n") {
		f := map[string]string{}
		for _, l := range strings.Split(block, "\n") {
			f[l[:2]] = l[2:]
		}
		want = append(want, fmt.Sprintf("%s %s %s %s auto=%v", f["P:"], f["V:"], f["A:"], f["I:"], !world[f["P:"]]))
		for _, w := range strings.Fields(f["D:"]) {
			if !strings.HasPrefix(w, "!") {
				deps++
			}
		}
		provides += len(strings.Fields(f["p:"]))
	}
	sort.Strings(want)
	var got []string
	var gotDeps, gotProvides int
	for _, p := range db.Packages {
		got = append(got, fmt.Sprintf("%s %s %s %d auto=%v", p.Name, p.Version, p.Arch, p.InstalledSize, *p.Auto))
		gotDeps += len(p.Depends)
		gotProvides += len(p.Provides)
	}
	if len(got) != 26 {
		t.Errorf("%d packages, want 26", len(got))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages differ (-want +got):\n%s", diff)
	}
	if gotDeps != deps || gotProvides != provides {
		t.Errorf("%d dependencies and %d provides, want %d and %d", gotDeps, gotProvides, deps, provides)
	}
	spotCheckAPK(t, db.Packages)
}

func spotCheckAPK(t *testing.T, pkgs []Package) {
	t.Helper()
	apk := findPackage(t, pkgs, "apk-tools")
	if d := (Dep{Kind: Depends, Alts: []Relation{{Name: "musl", Op: ">=", Version: "1.2"}}}); !containsDep(apk.Depends, d) {
		t.Errorf("apk-tools lacks %+v", d)
	}
	if apk.UpstreamVersion != "2.12.6" || apk.Release != "r0" || apk.Source != "apk-tools" || *apk.Auto {
		t.Errorf("apk-tools = %+v", apk)
	}
	ifup := findPackage(t, pkgs, "ifupdown-ng")
	for _, d := range ifup.Depends {
		if strings.Contains(d.Alts[0].Name, "vlan") {
			t.Errorf("ifupdown-ng has the conflict !vlan as an edge: %+v", d)
		}
	}
	if !containsRelation(findPackage(t, pkgs, "busybox").Provides, Relation{Name: "/bin/sh"}) {
		t.Errorf("busybox does not provide /bin/sh")
	}
	musl := findPackage(t, pkgs, "musl")
	if !containsRelation(musl.Provides, Relation{Name: "so:libc.musl-armv7.so.1", Op: "=", Version: "1"}) || !*musl.Auto {
		t.Errorf("musl = %+v", musl)
	}
}

func TestParseAPKInstalled(t *testing.T) {
	in := "C:Q1abc=\nP:foo\nV:1.0_rc1-r12\nA:x86_64\nI:4096\nT:Foo tool\no:foo-src\n" +
		"D:bar>=2 baz<3 qux~1.2 so:libc.musl-x86_64.so.1 cmd:sh pc:zlib !old pinned@edge other@edge=4\n" +
		"p:cmd:foo=1.0_rc1-r12 virt\nF:usr\nR:foo\na:0:0:755\n\nP:bare\nV:2\n"
	got, err := ParseAPKInstalled(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	dep := func(name, op, version string) Dep {
		return Dep{Kind: Depends, Alts: []Relation{{Name: name, Op: op, Version: version}}}
	}
	want := []Package{{
		Name: "foo", Version: "1.0_rc1-r12", UpstreamVersion: "1.0_rc1", Release: "r12", Arch: "x86_64",
		InstalledSize: 4096, Description: "Foo tool", Source: "foo-src",
		Depends: []Dep{dep("bar", ">=", "2"), dep("baz", "<", "3"), dep("qux", "~", "1.2"),
			dep("so:libc.musl-x86_64.so.1", "", ""), dep("cmd:sh", "", ""), dep("pc:zlib", "", ""),
			dep("pinned", "", ""), dep("other", "=", "4")},
		Provides: []Relation{{Name: "cmd:foo", Op: "=", Version: "1.0_rc1-r12"}, {Name: "virt"}},
	}, {Name: "bare", Version: "2", UpstreamVersion: "2"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseAPKInstalled mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		in   string
		line int
	}{
		{"P:a\nV:1\nbad line\n", 3},
		{"P:a\nV:1\nI:big\n", 3},
		{"P:a\nV:1\nD:>=1\n", 3},
		{"P:a\nV:1\nD:b>=\n", 3},
		{"P:a\nP:b\n", 2},
		{"P:a\nV:1\n\nV:2\nA:x\n", 4},
		{"P:a\nV:1\n\nP:b\n", 4},
	} {
		_, err := ParseAPKInstalled(strings.NewReader(tt.in))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != tt.line {
			t.Errorf("ParseAPKInstalled(%q) error = %v, want a ParseError at line %d", tt.in, err, tt.line)
		}
	}
}

func TestReadAPKWorld(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		apkInstalledPath: "P:a\nV:1-r0\n\nP:b\nV:1-r0\n\nP:c\nV:1-r0\np:virt=1\n\nP:d\nV:1-r0\n\nP:e\nV:1-r0\n",
		apkWorldPath:     "a@edge\nb>=1\nvirt\n!d\n",
	})
	db, err := ReadAPK(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range db.Packages {
		got = append(got, fmt.Sprintf("%s auto=%v", p.Name, *p.Auto))
	}
	want := []string{"a auto=false", "b auto=false", "c auto=false", "d auto=true", "e auto=true"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("auto marks (-want +got):\n%s", diff)
	}
	os.Remove(filepath.Join(root, apkWorldPath))
	if db, err = ReadAPK(root); err != nil || db.Packages[0].Auto != nil {
		t.Errorf("without world: Auto = %v, %v; want nil", db.Packages[0].Auto, err)
	}
}
