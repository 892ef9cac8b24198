package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"
)

// Manager names a package manager.
type Manager string

// The package managers this package reads.
const (
	Dpkg   Manager = "dpkg"
	RPM    Manager = "rpm"
	APK    Manager = "apk"
	Pacman Manager = "pacman"
)

// DepKind says what kind of dependency edge a Dep is.
type DepKind string

// The dependency kinds that are edges. Weaker hints (dpkg Suggests, rpm
// Suggests, pacman optdepends, apk install_if) are not edges.
const (
	Depends    DepKind = "depends"
	PreDepends DepKind = "pre-depends"
	Recommends DepKind = "recommends"
)

// Relation names a package (or a virtual name, soname, command, file) with an
// optional version constraint.
type Relation struct {
	Name string `json:"name"`
	// Op is the manager's own operator: dpkg "<<", "<=", "=", ">=", ">>";
	// rpm and pacman "<", "<=", "=", ">=", ">"; apk also "~" (fuzzy).
	Op      string `json:"op,omitempty"`
	Version string `json:"version,omitempty"`
	// Arch is a dpkg architecture qualifier ("any", "native", "amd64").
	Arch string `json:"arch,omitempty"`
}

// Dep is one dependency: any one of Alts satisfies it.
type Dep struct {
	Kind DepKind    `json:"kind"`
	Alts []Relation `json:"alts"`
}

// Package is one installed package.
type Package struct {
	Name string `json:"name"`
	// Version is the full version as the manager prints it: dpkg
	// "[epoch:]upstream[-revision]", rpm "[epoch:]version-release" (no epoch
	// when it is absent or 0), apk "pkgver-rN", pacman "[epoch:]pkgver-pkgrel".
	Version string `json:"version"`
	Arch    string `json:"arch"`

	Epoch           int    `json:"epoch,omitempty"`
	UpstreamVersion string `json:"upstream_version,omitempty"`
	Release         string `json:"release,omitempty"`

	// InstalledSize is in bytes.
	InstalledSize int64 `json:"installed_size"`
	// Auto is true when the package was installed as a dependency; nil when
	// the manager does not record it (rpm) or its record is absent.
	Auto *bool `json:"auto,omitempty"`
	// Status is dpkg's raw Status field ("install ok installed"); empty for
	// the other managers. dpkg packages whose files are on disk but whose
	// installation is unfinished or broken ("install ok half-configured",
	// "install reinstreq unpacked") are listed too: Healthy tells them apart.
	Status string `json:"status,omitempty"`

	Depends  []Dep      `json:"depends,omitempty"`
	Provides []Relation `json:"provides,omitempty"`
	// Source is the source package name: dpkg Source (the package's own name
	// when absent, as dpkg-query's ${source:Package}), the name in rpm's
	// SOURCERPM, apk origin, pacman %BASE%.
	Source string `json:"source,omitempty"`
	// Description is the first line of the description only.
	Description string `json:"description,omitempty"`
}

// Healthy reports whether a package is fully installed: always true outside
// dpkg; with dpkg, true for the states "installed", "triggers-pending" and
// "triggers-awaited" without an error flag.
func (p Package) Healthy() bool {
	if p.Status == "" {
		return true
	}
	f := strings.Fields(p.Status)
	if len(f) != 3 || f[1] != "ok" {
		return false
	}
	switch f[2] {
	case "installed", "triggers-pending", "triggers-awaited":
		return true
	}
	return false
}

// DB is the installed-package database of one system.
type DB struct {
	Manager Manager `json:"manager"`
	// Packages are sorted by name, then arch, then version.
	Packages []Package `json:"packages"`
}

// ErrNoDatabase is returned by Detect and Read when no known package database
// exists under the root.
var ErrNoDatabase = errors.New("no package database found")

// ErrTooLarge is returned when a database file or one of its lines is over
// the size this package accepts (the same error as the confined reader's).
var ErrTooLarge = rootfs.ErrTooLarge

// ParseError locates malformed input.
type ParseError struct {
	File string // empty when parsing a reader
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// withFile names the file in err's ParseError, if it has one.
func withFile(err error, file string) error {
	var pe *ParseError
	if errors.As(err, &pe) && pe.File == "" {
		pe.File = file
	}
	return err
}

// detectors lists the managers in the order Detect prefers them when the
// os-release of the root does not decide.
var detectors = []struct {
	m     Manager
	found func(r *rootfs.Root) bool
}{
	{Dpkg, func(r *rootfs.Root) bool { return r.IsFile(dpkgStatusPath) }},
	{RPM, func(r *rootfs.Root) bool { _, err := findRPMDB(r); return err == nil }},
	{APK, func(r *rootfs.Root) bool { return r.IsFile(apkInstalledPath) }},
	{Pacman, func(r *rootfs.Root) bool { return r.IsDir(pacmanLocalPath) }},
}

// Detect says which package database exists under root ("/" or the root
// directory of a VM). When several exist (Fedora ships dpkg, Debian ships
// rpm), the one matching ID and ID_LIKE in the root's os-release wins.
//
// Every file is looked up inside root: a symlink resolves as it would in a
// chroot and never reaches a file of the host.
func Detect(root string) (Manager, error) {
	r, err := rootfs.Open(root)
	if err != nil {
		return "", fmt.Errorf("detecting package manager: %w", err)
	}
	defer r.Close()
	return detect(r)
}

func detect(r *rootfs.Root) (Manager, error) {
	root := r.Dir()
	var found []Manager
	for _, d := range detectors {
		if d.found(r) {
			found = append(found, d.m)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("detecting package manager under %s: %w", root, ErrNoDatabase)
	case 1:
		return found[0], nil
	}
	for _, id := range osReleaseIDs(r) {
		for _, m := range found {
			if managerOfDistro[id] == m {
				return m, nil
			}
		}
	}
	return found[0], nil
}

// managerOfDistro maps os-release IDs (and ID_LIKE words) to managers.
var managerOfDistro = func() map[string]Manager {
	m := make(map[string]Manager)
	for mgr, ids := range map[Manager][]string{
		Dpkg:   {"debian", "ubuntu"},
		RPM:    {"fedora", "rhel", "centos", "rocky", "almalinux", "suse", "opensuse", "sles", "mariner", "amzn"},
		APK:    {"alpine"},
		Pacman: {"arch", "archlinux"},
	} {
		for _, id := range ids {
			m[id] = mgr
		}
	}
	return m
}()

// osReleaseIDs returns ID then the words of ID_LIKE from the root's
// os-release, or nothing when it cannot be read.
func osReleaseIDs(r *rootfs.Root) []string {
	var data []byte
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := r.ReadFile(p, rootfs.ConfigLimit)
		if err == nil {
			data = b
			break
		}
	}
	var id, like []string
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = []string{v}
		case "ID_LIKE":
			like = strings.Fields(v)
		}
	}
	return append(id, like...)
}

// Read detects the package manager under root and reads its database.
func Read(ctx context.Context, root string) (*DB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := rootfs.Open(root)
	if err != nil {
		return nil, fmt.Errorf("reading packages: %w", err)
	}
	defer r.Close()
	m, err := detect(r)
	if err != nil {
		return nil, err
	}
	switch m {
	case Dpkg:
		return readDpkg(r)
	case RPM:
		return readRPM(r)
	case APK:
		return readAPK(r)
	default:
		return readPacman(r)
	}
}

// inRoot opens root and calls read with it: the exported per-manager readers.
func inRoot(root string, read func(*rootfs.Root) (*DB, error)) (*DB, error) {
	r, err := rootfs.Open(root)
	if err != nil {
		return nil, fmt.Errorf("reading packages: %w", err)
	}
	defer r.Close()
	return read(r)
}

// sortPackages orders packages by name, then arch, then version.
func sortPackages(pkgs []Package) {
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := pkgs[i], pkgs[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Arch != b.Arch {
			return a.Arch < b.Arch
		}
		return a.Version < b.Version
	})
}

func boolPtr(b bool) *bool { return &b }
