package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// sharedTestdata is the folder of real databases beside the project root;
// it is read in place, never copied into the project.
const sharedTestdata = "../../../shared/testdata"

// requireShared returns the path of a shared testdata entry, skipping (or
// failing under CI) when the folder is absent, as it is in a user's clone.
func requireShared(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(sharedTestdata, rel)
	if _, err := os.Stat(p); err != nil {
		testenv.Skip(t, fmt.Sprintf("shared testdata %s is absent (it lives beside the project root, not in the repository): %v", p, err))
	}
	return p
}

// validOps lists the operators each manager may produce.
var validOps = map[Manager]map[string]bool{
	Dpkg:   {"": true, "<<": true, "<=": true, "=": true, ">=": true, ">>": true},
	RPM:    {"": true, "<": true, "<=": true, "=": true, ">=": true, ">": true},
	Pacman: {"": true, "<": true, "<=": true, "=": true, ">=": true, ">": true},
	APK:    {"": true, "<": true, "<=": true, "=": true, ">=": true, ">": true, "~": true, "~=": true},
}

// checkDB is the conformance check every backend's output passes: sorted,
// complete packages, well-formed edges, no duplicate package.
func checkDB(t *testing.T, db *DB, want Manager) {
	t.Helper()
	if db.Manager != want {
		t.Errorf("Manager = %q, want %q", db.Manager, want)
	}
	if !sort.SliceIsSorted(db.Packages, func(i, j int) bool {
		a, b := db.Packages[i], db.Packages[j]
		return a.Name < b.Name || a.Name == b.Name && a.Arch < b.Arch
	}) {
		t.Errorf("packages are not sorted by name, then arch")
	}
	seen := map[string]bool{}
	for _, p := range db.Packages {
		key := p.Name + " " + p.Arch + " " + p.Version
		if seen[key] {
			t.Errorf("duplicate package %s", key)
		}
		seen[key] = true
		if p.Name == "" || p.Version == "" || p.UpstreamVersion == "" {
			t.Errorf("incomplete package %+v", p)
		}
		if p.InstalledSize < 0 {
			t.Errorf("%s: negative size", p.Name)
		}
		for _, d := range p.Depends {
			if d.Kind != Depends && d.Kind != PreDepends && d.Kind != Recommends {
				t.Errorf("%s: dependency kind %q", p.Name, d.Kind)
			}
			if len(d.Alts) == 0 {
				t.Errorf("%s: dependency without alternatives", p.Name)
			}
			for _, r := range d.Alts {
				checkRelation(t, want, p.Name, r)
			}
		}
		for _, r := range p.Provides {
			checkRelation(t, want, p.Name, r)
		}
	}
}

func checkRelation(t *testing.T, m Manager, pkg string, r Relation) {
	t.Helper()
	if r.Name == "" || !validOps[m][r.Op] || (r.Op == "") != (r.Version == "") {
		t.Errorf("%s: bad relation %+v", pkg, r)
	}
}

// nevraLines renders packages as the shared oracles do:
// "NAME EPOCH:VERSION-RELEASE ARCH", sorted.
func nevraLines(pkgs []Package) []string {
	lines := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		lines = append(lines, fmt.Sprintf("%s %d:%s-%s %s", p.Name, p.Epoch, p.UpstreamVersion, p.Release, p.Arch))
	}
	sort.Strings(lines)
	return lines
}

// commandLines runs a command and returns its non-empty output lines.
func commandLines(t *testing.T, name string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("%s: %v", name, err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// writeFiles creates files (path relative to root -> content).
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const tinyStatus = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  Manager
	}{
		{"dpkg", map[string]string{dpkgStatusPath: tinyStatus}, Dpkg},
		{"rpm sysimage", map[string]string{"usr/lib/sysimage/rpm/rpmdb.sqlite": "x"}, RPM},
		{"rpm bdb", map[string]string{"var/lib/rpm/Packages": "x"}, RPM},
		{"apk", map[string]string{apkInstalledPath: ""}, APK},
		{"pacman", map[string]string{pacmanLocalPath + "/ALPM_DB_VERSION": "9"}, Pacman},
		{"debian with rpm", map[string]string{
			dpkgStatusPath: tinyStatus, "var/lib/rpm/rpmdb.sqlite": "x", "etc/os-release": "ID=debian\n",
		}, Dpkg},
		{"fedora with dpkg", map[string]string{
			dpkgStatusPath: tinyStatus, "var/lib/rpm/rpmdb.sqlite": "x", "etc/os-release": "ID=fedora\n",
		}, RPM},
		{"rocky via ID_LIKE", map[string]string{
			dpkgStatusPath: tinyStatus, "var/lib/rpm/rpmdb.sqlite": "x",
			"usr/lib/os-release": "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
		}, RPM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			got, err := Detect(root)
			if err != nil || got != tt.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := Detect(t.TempDir()); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("Detect(empty) error = %v, want ErrNoDatabase", err)
	}
}

func TestRead(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{dpkgStatusPath: tinyStatus})
	db, err := Read(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	checkDB(t, db, Dpkg)
	if len(db.Packages) != 1 || db.Packages[0].Name != "a" {
		t.Errorf("Read = %+v", db)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Read(ctx, root); !errors.Is(err, context.Canceled) {
		t.Errorf("Read(cancelled) error = %v", err)
	}
	if _, err := Read(context.Background(), t.TempDir()); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("Read(empty) error = %v", err)
	}
}

func TestHealthy(t *testing.T) {
	for status, want := range map[string]bool{
		"":                                 true,
		"install ok installed":             true,
		"hold ok installed":                true,
		"install ok triggers-pending":      true,
		"install ok half-configured":       false,
		"install ok unpacked":              false,
		"install reinstreq half-installed": false,
	} {
		if got := (Package{Status: status}).Healthy(); got != want {
			t.Errorf("Healthy(%q) = %v, want %v", status, got, want)
		}
	}
}

// isFile reports whether the host path p is a regular file (tests reading the host's own
// database).
func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
