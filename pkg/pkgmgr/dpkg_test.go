package pkgmgr

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
)

const sampleStatus = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12988
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales
Breaks: hurd (<< 1:0.9.git20220301-2)
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 This package includes shared versions.

Package: libc6
Status: install ok installed
Installed-Size: 11100
Architecture: i386
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries

package: debconf
status: install ok half-configured
pre-depends: perl-base (>= 5.20.1-3~)
architecture: all
version: 1.5.82
provides: debconf-2.0
description: Debian configuration management system

Package: dpkg-dev
Status: install ok installed
Architecture: all
Version: 1:1.21.22
Depends: perl:any, libdpkg-perl (= 1.21.22), tar (>= 1.28-1) | bsdtar:native, bzip2
Provides: dpkg-dev-virtual (= 1.0), otherthing
Conffiles:
 /etc/foo 0123456789abcdef0123456789abcdef

Package: gone
Status: purge ok not-installed
Architecture: amd64

Package: removed
Status: deinstall ok config-files
Architecture: amd64
Version: 3.0-1
Conffiles:
 /etc/removed.conf 0123456789abcdef0123456789abcdef obsolete
`

func TestParseDpkgStatus(t *testing.T) {
	got, err := ParseDpkgStatus(strings.NewReader(sampleStatus))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{
			Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", UpstreamVersion: "2.36", Release: "9+deb12u4",
			InstalledSize: 12988 * 1024, Status: "install ok installed", Source: "glibc",
			Description: "GNU C Library: Shared libraries",
			Depends: []Dep{
				{Kind: Depends, Alts: []Relation{{Name: "libgcc-s1"}}},
				{Kind: Recommends, Alts: []Relation{{Name: "libidn2-0", Op: ">=", Version: "2.0.5~"}}},
			},
		},
		{
			Name: "libc6", Version: "2.36-9+deb12u4", Arch: "i386", UpstreamVersion: "2.36", Release: "9+deb12u4",
			InstalledSize: 11100 * 1024, Status: "install ok installed", Source: "glibc",
			Description: "GNU C Library: Shared libraries",
			Depends:     []Dep{{Kind: Depends, Alts: []Relation{{Name: "libgcc-s1"}}}},
		},
		{
			Name: "debconf", Version: "1.5.82", Arch: "all", UpstreamVersion: "1.5.82",
			Status: "install ok half-configured", Source: "debconf",
			Description: "Debian configuration management system",
			Depends:     []Dep{{Kind: PreDepends, Alts: []Relation{{Name: "perl-base", Op: ">=", Version: "5.20.1-3~"}}}},
			Provides:    []Relation{{Name: "debconf-2.0"}},
		},
		{
			Name: "dpkg-dev", Version: "1:1.21.22", Arch: "all", Epoch: 1, UpstreamVersion: "1.21.22",
			Status: "install ok installed", Source: "dpkg-dev",
			Depends: []Dep{
				{Kind: Depends, Alts: []Relation{{Name: "perl", Arch: "any"}}},
				{Kind: Depends, Alts: []Relation{{Name: "libdpkg-perl", Op: "=", Version: "1.21.22"}}},
				{Kind: Depends, Alts: []Relation{{Name: "tar", Op: ">=", Version: "1.28-1"}, {Name: "bsdtar", Arch: "native"}}},
				{Kind: Depends, Alts: []Relation{{Name: "bzip2"}}},
			},
			Provides: []Relation{{Name: "dpkg-dev-virtual", Op: "=", Version: "1.0"}, {Name: "otherthing"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseDpkgStatus mismatch (-want +got):\n%s", diff)
	}
	if got[2].Healthy() || !got[0].Healthy() {
		t.Errorf("Healthy: half-configured %v, installed %v", got[2].Healthy(), got[0].Healthy())
	}
}

func TestParseDpkgStatusErrors(t *testing.T) {
	tests := []struct {
		name, input string
		line        int
		msg         string
	}{
		{"continuation first", " orphan\n", 1, "continuation line outside a field"},
		{"no colon", "Package: a\nStatus: install ok installed\nVersion: 1\ngarbage\n", 4, "neither a field"},
		{"duplicate", "Package: a\npackage: b\n", 2, "duplicate field"},
		{"no package", "Status: install ok installed\nVersion: 1\n", 1, "missing field"},
		{"bad status", "Package: a\nStatus: install ok\n", 2, "want three words"},
		{"unknown state", "Package: a\nStatus: install ok sideways\n", 2, "unknown status"},
		{"no version", "Package: a\nStatus: install ok installed\n", 1, "missing field"},
		{"bad epoch", "Package: a\nStatus: install ok installed\nVersion: x:1\n", 3, "invalid epoch"},
		{"bad size", "Package: a\nStatus: install ok installed\nVersion: 1\nInstalled-Size: 12k\n", 4, "invalid size"},
		{"bad depends", "\n\nPackage: a\nStatus: install ok installed\nVersion: 1\nDepends: b (>= 1\n", 6, "missing closing"},
		{"provides alternatives", "Package: a\nStatus: install ok installed\nVersion: 1\nProvides: b | c\n", 4, "alternatives"},
		{"bad name", "Package: -a\nStatus: install ok installed\nVersion: 1\n", 1, "invalid package name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDpkgStatus(strings.NewReader(tt.input))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ParseError", err)
			}
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error = %q at line %d, want line %d containing %q", err, pe.Line, tt.line, tt.msg)
			}
		})
	}
}

func TestParseDpkgStatusLimits(t *testing.T) {
	long := "Package: a\nStatus: install ok installed\nVersion: 1\nDescription: " + strings.Repeat("x", maxLineSize) + "\n"
	_, err := ParseDpkgStatus(strings.NewReader(long))
	var pe *ParseError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) || pe.Line != 4 {
		t.Errorf("over-long line: error = %v, want ErrTooLarge at line 4", err)
	}
	big := strings.Repeat(tinyStatus+"\n", 100)
	if _, err := parseDpkgRecords(strings.NewReader(big), 1024, int64(len(big)-1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over-large input: error = %v, want ErrTooLarge", err)
	}
	if recs, err := parseDpkgRecords(strings.NewReader(big), 1024, int64(len(big))); err != nil || len(recs) != 100 {
		t.Errorf("input at the limit: %d records, error %v", len(recs), err)
	}
}

func TestParseDpkgDepends(t *testing.T) {
	tests := []struct {
		in   string
		want []Dep
	}{
		{"", []Dep{}},
		{"a", []Dep{{Kind: Depends, Alts: []Relation{{Name: "a"}}}}},
		{"a (>= 1.2), b | c:any (<< 2:3-4~)", []Dep{
			{Kind: Depends, Alts: []Relation{{Name: "a", Op: ">=", Version: "1.2"}}},
			{Kind: Depends, Alts: []Relation{{Name: "b"}, {Name: "c", Arch: "any", Op: "<<", Version: "2:3-4~"}}},
		}},
		{"a(=1)", []Dep{{Kind: Depends, Alts: []Relation{{Name: "a", Op: "=", Version: "1"}}}}},
		{"a (< 1), b (> 2)", []Dep{
			{Kind: Depends, Alts: []Relation{{Name: "a", Op: "<=", Version: "1"}}},
			{Kind: Depends, Alts: []Relation{{Name: "b", Op: ">=", Version: "2"}}},
		}},
		{" libstdc++6 (>= 11) ,\n  g++-12:amd64 ", []Dep{
			{Kind: Depends, Alts: []Relation{{Name: "libstdc++6", Op: ">=", Version: "11"}}},
			{Kind: Depends, Alts: []Relation{{Name: "g++-12", Arch: "amd64"}}},
		}},
	}
	for _, tt := range tests {
		got, err := ParseDpkgDepends(tt.in, Depends)
		if err != nil {
			t.Errorf("ParseDpkgDepends(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseDpkgDepends(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, bad := range []string{"a,", ",a", "a | ", "a (>= )", "a (1.0)", "a (>= 1", "a b", "a:", "a [amd64]", "(>= 1)", "a (>= 1) x"} {
		if _, err := ParseDpkgDepends(bad, Depends); err == nil {
			t.Errorf("ParseDpkgDepends(%q) succeeded, want an error", bad)
		}
	}
}

func TestReadDpkgJournalAndAuto(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		dpkgStatusPath: "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n" +
			"Package: b\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n" +
			"Package: c\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n",
		// dpkg's journal: b was upgraded and c removed since status was last written.
		dpkgUpdatesPath + "/0001": "Package: b\nStatus: install ok installed\nVersion: 2\nArchitecture: all\n",
		dpkgUpdatesPath + "/0002": "Package: c\nStatus: purge ok not-installed\nArchitecture: amd64\n\n" +
			"Package: d\nStatus: install ok unpacked\nVersion: 4\nArchitecture: amd64\n",
		dpkgUpdatesPath + "/tmp.i": "Package: e\nStatus: install ok installed\nVersion: 1\n",
		aptExtendedStatesPath: "Package: b\nArchitecture: amd64\nAuto-Installed: 1\n\n" +
			"Package: a\nArchitecture: amd64\nAuto-Installed: 0\n",
	})
	db, err := ReadDpkg(root)
	if err != nil {
		t.Fatal(err)
	}
	checkDB(t, db, Dpkg)
	var got []string
	for _, p := range db.Packages {
		got = append(got, fmt.Sprintf("%s %s auto=%v", p.Name, p.Version, *p.Auto))
	}
	want := []string{"a 1 auto=false", "b 2 auto=true", "d 4 auto=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadDpkg mismatch (-want +got):\n%s", diff)
	}
}

func TestReadDpkgErrorNamesFile(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{dpkgStatusPath: tinyStatus + "\nPackage: b\nStatus: bogus\n"})
	_, err := ReadDpkg(root)
	if err == nil || !strings.Contains(err.Error(), "reading dpkg status: /"+dpkgStatusPath+":7: ") {
		t.Errorf("error = %v, want one naming the file and line 7", err)
	}
}

// TestReadDpkgReal compares ReadDpkg("/") with dpkg-query on this machine.
func TestReadDpkgReal(t *testing.T) {
	testenv.Short(t)
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("dpkg-query is absent: this machine is not Debian-based")
	}
	db, err := ReadDpkg("/")
	if err != nil {
		t.Fatal(err)
	}
	checkDB(t, db, Dpkg)
	const sep = "\x1f"
	format := strings.Join([]string{"${db:Status-Abbrev}", "${Package}", "${Version}", "${Architecture}",
		"${Installed-Size}", "${source:Package}", "${binary:Summary}",
		"${Pre-Depends}", "${Depends}", "${Recommends}", "${Provides}"}, sep) + "\n"
	var want, wantII []string
	oracle := map[string][]string{}
	for _, l := range commandLines(t, "dpkg-query", "-W", "-f", format) {
		f := strings.Split(l, sep)
		if strings.ContainsAny(f[0][1:2], "nc") { // not-installed, config-files: no files on disk
			continue
		}
		size, _ := strconv.ParseInt(f[4], 10, 64)
		// dpkg-query keeps trailing blanks of a description; ReadDpkg trims them.
		line := fmt.Sprintf("%s %s %s %d %s %q", f[1], f[2], f[3], size*1024, f[5], strings.TrimSpace(f[6]))
		want = append(want, line)
		if f[0][:2] == "ii" {
			wantII = append(wantII, line)
		}
		oracle[f[1]+":"+f[3]] = f[7:]
	}
	var got, gotII []string
	for _, p := range db.Packages {
		line := fmt.Sprintf("%s %s %s %d %s %q", p.Name, p.Version, p.Arch, p.InstalledSize, p.Source, p.Description)
		got = append(got, line)
		if p.Status == "install ok installed" {
			gotII = append(gotII, line)
		}
	}
	sort.Strings(want)
	sort.Strings(wantII)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages differ from dpkg-query (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantII, gotII); diff != "" {
		t.Errorf("\"ii\" packages differ from dpkg-query (-want +got):\n%s", diff)
	}
	checkDpkgEdges(t, db, oracle)
}

// checkDpkgEdges compares every package's edges with dpkg-query's rendering
// of its fields, parsed by an independent regular expression, and makes
// sure the spot checks (alternatives, Pre-Depends, :any) were exercised.
func checkDpkgEdges(t *testing.T, db *DB, oracle map[string][]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range db.Packages {
		f := oracle[p.Name+":"+p.Arch]
		want := append(append(oracleDeps(t, f[0], PreDepends), oracleDeps(t, f[1], Depends)...), oracleDeps(t, f[2], Recommends)...)
		if diff := cmp.Diff(want, p.Depends); diff != "" {
			t.Errorf("%s: Depends differ from dpkg-query (-want +got):\n%s", p.Name, diff)
		}
		var wantProv []Relation
		for _, d := range oracleDeps(t, f[3], "") {
			wantProv = append(wantProv, d.Alts...)
		}
		if diff := cmp.Diff(wantProv, p.Provides); diff != "" {
			t.Errorf("%s: Provides differ from dpkg-query (-want +got):\n%s", p.Name, diff)
		}
		for _, d := range p.Depends {
			seen["alternatives"] = seen["alternatives"] || len(d.Alts) > 1
			seen["pre-depends"] = seen["pre-depends"] || d.Kind == PreDepends
			seen["versioned"] = seen["versioned"] || d.Alts[0].Op != ""
			seen["arch qualifier"] = seen["arch qualifier"] || d.Alts[0].Arch != ""
		}
	}
	// apt (gpgv | gpgv2 | gpgv1) and coreutils (Pre-Depends) are in every
	// Debian system; perl:any is in most.
	for _, what := range []string{"alternatives", "pre-depends", "versioned"} {
		if !seen[what] {
			t.Errorf("no installed package has %s: the spot check did not run", what)
		}
	}
}

var oracleRel = regexp.MustCompile(`^([a-z0-9][a-z0-9+.\-]*)(?::([a-z0-9-]+))?(?: \((<<|<=|=|>=|>>) ([^ )]+)\))?$`)

func oracleDeps(t *testing.T, field string, kind DepKind) []Dep {
	t.Helper()
	if field == "" {
		return nil
	}
	var deps []Dep
	for _, item := range strings.Split(field, ", ") {
		d := Dep{Kind: kind}
		for _, alt := range strings.Split(item, " | ") {
			m := oracleRel.FindStringSubmatch(alt)
			if m == nil {
				t.Fatalf("oracle cannot parse %q in %q", alt, field)
			}
			d.Alts = append(d.Alts, Relation{Name: m[1], Arch: m[2], Op: m[3], Version: m[4]})
		}
		deps = append(deps, d)
	}
	return deps
}
