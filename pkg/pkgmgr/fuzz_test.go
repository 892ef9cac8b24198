package pkgmgr

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addFileSeed adds a file's first bytes as a seed when the file exists.
func addFileSeed(f *testing.F, path string, max int) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if len(data) > max {
		data = data[:max]
	}
	f.Add(data)
}

// requireParseError fails unless err locates the problem.
func requireParseError(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line < 1 {
		t.Fatalf("error %v (%T) is not a *ParseError with a line", err, err)
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add([]byte(sampleStatus))
	f.Add([]byte(tinyStatus))
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1:2-3\nDepends: b (>= 1) | c:any\n"))
	addFileSeed(f, "/var/lib/dpkg/status", 16<<10)
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParseDpkgStatus(bytes.NewReader(data))
		if err != nil {
			requireParseError(t, err)
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.UpstreamVersion == "" || p.InstalledSize < 0 {
				t.Fatalf("incomplete package %+v", p)
			}
			if onDisk, err := checkDpkgStatus(p.Status); err != nil || !onDisk {
				t.Fatalf("package %s with status %q", p.Name, p.Status)
			}
			for _, d := range p.Depends {
				if len(d.Alts) == 0 {
					t.Fatalf("package %s: empty dependency", p.Name)
				}
			}
		}
	})
}

// formatDpkgDeps renders deps as dpkg writes them.
func formatDpkgDeps(deps []Dep) string {
	var items []string
	for _, d := range deps {
		var alts []string
		for _, r := range d.Alts {
			s := r.Name
			if r.Arch != "" {
				s += ":" + r.Arch
			}
			if r.Op != "" {
				s += " (" + r.Op + " " + r.Version + ")"
			}
			alts = append(alts, s)
		}
		items = append(items, strings.Join(alts, " | "))
	}
	return strings.Join(items, ", ")
}

func FuzzParseDpkgDepends(f *testing.F) {
	for _, s := range []string{"", "a", "a (>= 1.2), b | c:any (<< 2:3-4~)", "a(=1)", "a (< 1)", "perl:any, libc6 (>= 2.34)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, field string) {
		deps, err := ParseDpkgDepends(field, Recommends)
		if err != nil {
			return
		}
		// Round trip: what we parsed, written as dpkg writes it, parses the same.
		again, err := ParseDpkgDepends(formatDpkgDeps(deps), Recommends)
		if err != nil {
			t.Fatalf("reparsing %q (from %q): %v", formatDpkgDeps(deps), field, err)
		}
		if diff := cmp.Diff(deps, again); diff != "" {
			t.Fatalf("round trip of %q differs (-first +second):\n%s", field, diff)
		}
		for _, d := range deps {
			if d.Kind != Recommends || len(d.Alts) == 0 {
				t.Fatalf("bad dep %+v", d)
			}
		}
	})
}

func FuzzParseAPKInstalled(f *testing.F) {
	f.Add([]byte("P:foo\nV:1.0-r1\nA:x86_64\nI:4096\nD:bar>=2 !old so:libc.musl-x86_64.so.1\np:cmd:foo=1.0-r1\n\nP:bar\nV:2-r0\n"))
	addFileSeed(f, filepath.Join(sharedTestdata, "apk/alpine-3.14-armv7", apkInstalledPath), 16<<10)
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParseAPKInstalled(bytes.NewReader(data))
		if err != nil {
			requireParseError(t, err)
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || p.InstalledSize < 0 {
				t.Fatalf("incomplete package %+v", p)
			}
			for _, d := range p.Depends {
				if len(d.Alts) != 1 || d.Alts[0].Name == "" || strings.HasPrefix(d.Alts[0].Name, "!") {
					t.Fatalf("package %s: bad dependency %+v", p.Name, d)
				}
			}
		}
	})
}

func FuzzParsePacmanDesc(f *testing.F) {
	f.Add([]byte("%NAME%\nfoo\n\n%VERSION%\n1:2.0-3\n\n%SIZE%\n5\n\n%REASON%\n1\n\n%DEPENDS%\nbar>=1\nsh\n\n%PROVIDES%\nlibfoo.so=1-64\n"))
	f.Add([]byte("%NAME%\na\n\n%VERSION%\n1-1\n\n%OPTDEPENDS%\nb: why\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePacmanDesc(bytes.NewReader(data))
		if err != nil {
			requireParseError(t, err)
			return
		}
		if p.Name == "" || p.Version == "" || p.Release == "" || p.Auto == nil || p.InstalledSize < 0 {
			t.Fatalf("incomplete package %+v", p)
		}
		for _, d := range p.Depends {
			if len(d.Alts) != 1 || d.Alts[0].Name == "" || (d.Alts[0].Op == "") != (d.Alts[0].Version == "") {
				t.Fatalf("bad dependency %+v", d)
			}
		}
	})
}

// FuzzParseRPMHeader covers the rpm header decoder (the storage backends
// are go-rpmdb's).
func FuzzParseRPMHeader(f *testing.F) {
	f.Add(testHeader(f, "x", "1", "2"))
	seeds := 0
	_ = eachRPMHeader(filepath.Join(sharedTestdata, "rpmdb/bdb-libuuid/Packages"), func(b []byte) error {
		if seeds++; seeds <= 2 {
			f.Add(b)
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, blob []byte) {
		h, err := parseRPMHeader(blob)
		if err != nil {
			return
		}
		p, err := rpmPackage(h)
		if err != nil {
			return
		}
		if p.Name == "" {
			t.Fatalf("package without name: %+v", p)
		}
		_, _ = rpmFiles(h)
	})
}
