package pkgmgr

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"
)

const (
	dpkgStatusPath        = "var/lib/dpkg/status"
	dpkgUpdatesPath       = "var/lib/dpkg/updates"
	aptExtendedStatesPath = "var/lib/apt/extended_states"

	// Bounds on what is read from a VM: a status file of 25,000 packages is
	// about 60 MiB; the journal rarely holds more than a few files.
	maxDpkgFile       = 128 << 20 // status, or one journal file
	maxDpkgTotal      = 256 << 20 // status and journal together
	maxDpkgUpdates    = 10000     // journal files
	maxExtendedStates = 32 << 20
)

// dpkg Status words (want, error flag, state).
var (
	dpkgWants  = map[string]bool{"unknown": true, "install": true, "hold": true, "deinstall": true, "purge": true}
	dpkgFlags  = map[string]bool{"ok": true, "reinstreq": true}
	dpkgStates = map[string]bool{ // value: the package's files are on disk
		"not-installed": false, "config-files": false, "half-installed": true, "unpacked": true,
		"half-configured": true, "triggers-awaited": true, "triggers-pending": true, "installed": true,
	}
)

// ReadDpkg reads ROOT/var/lib/dpkg/status, applies the journal entries dpkg
// has not yet merged (ROOT/var/lib/dpkg/updates/NNNN) as dpkg-query does, and
// marks packages auto-installed from ROOT/var/lib/apt/extended_states (Auto
// stays nil when that file is absent). Every file is read inside root, under
// a size bound.
func ReadDpkg(root string) (*DB, error) { return inRoot(root, readDpkg) }

func readDpkg(r *rootfs.Root) (*DB, error) {
	b := &budget{what: "dpkg status and updates", left: maxDpkgTotal}
	recs, err := readDpkgFile(r, b, dpkgStatusPath)
	if err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	recs, err = applyDpkgUpdates(r, b, recs, dpkgUpdatesPath)
	if err != nil {
		return nil, fmt.Errorf("reading dpkg updates: %w", err)
	}
	pkgs := installedDpkg(recs)
	auto, err := readExtendedStates(r, aptExtendedStatesPath)
	if err != nil {
		return nil, fmt.Errorf("reading apt extended states: %w", err)
	}
	if auto != nil {
		for i := range pkgs {
			pkgs[i].Auto = boolPtr(auto.isAuto(pkgs[i].Name, pkgs[i].Arch))
		}
	}
	sortPackages(pkgs)
	return &DB{Manager: Dpkg, Packages: pkgs}, nil
}

func readDpkgFile(r *rootfs.Root, b *budget, name string) ([]Package, error) {
	f, err := b.open(r, name, maxDpkgFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := parseDpkgRecords(f, maxLineSize, maxDpkgFile)
	return recs, withFile(err, f.Name())
}

// applyDpkgUpdates replaces records with the ones in dpkg's journal
// directory, in the numeric order of the journal files.
func applyDpkgUpdates(r *rootfs.Root, b *budget, recs []Package, dir string) ([]Package, error) {
	ents, err := r.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return recs, nil
	}
	if err != nil {
		return nil, err
	}
	if len(ents) > maxDpkgUpdates {
		return nil, fmt.Errorf("/%s holds %d entries, over %d: %w", dir, len(ents), maxDpkgUpdates, ErrTooLarge)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); n != "" && strings.Trim(n, "0123456789") == "" && e.Type().IsRegular() {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, _ := strconv.ParseUint(names[i], 10, 64)
		b, _ := strconv.ParseUint(names[j], 10, 64)
		return a < b
	})
	pos := make(map[string]int, len(recs))
	for i, p := range recs {
		pos[p.Name+":"+p.Arch] = i
	}
	for _, n := range names {
		upd, err := readDpkgFile(r, b, path.Join(dir, n))
		if err != nil {
			return nil, err
		}
		for _, p := range upd {
			if i, ok := pos[p.Name+":"+p.Arch]; ok {
				recs[i] = p
				continue
			}
			pos[p.Name+":"+p.Arch] = len(recs)
			recs = append(recs, p)
		}
	}
	return recs, nil
}

// ParseDpkgStatus parses a dpkg status file and returns, in file order, the
// packages whose files are on disk: every state but "not-installed" and
// "config-files". Package.Status tells fully installed ones from the rest.
// A line over 1 MiB or an input over 512 MiB is an error wrapping
// ErrTooLarge; malformed input gives a *ParseError with the line number.
func ParseDpkgStatus(r io.Reader) ([]Package, error) {
	recs, err := parseDpkgRecords(r, maxLineSize, maxFileSize)
	if err != nil {
		return nil, err
	}
	return installedDpkg(recs), nil
}

// installedDpkg keeps the records whose files are on disk.
func installedDpkg(recs []Package) []Package {
	out := make([]Package, 0, len(recs))
	for _, p := range recs {
		f := strings.Fields(p.Status)
		if len(f) == 3 && dpkgStates[f[2]] {
			out = append(out, p)
		}
	}
	return out
}

// parseDpkgRecords parses every paragraph of a status file, whatever its
// state.
func parseDpkgRecords(r io.Reader, maxLine int, maxFile int64) ([]Package, error) {
	var recs []Package
	err := readDeb822(r, maxLine, maxFile, func(p *debParagraph) error {
		pkg, err := dpkgPackage(p)
		if err != nil {
			return err
		}
		recs = append(recs, pkg)
		return nil
	})
	return recs, err
}

// dpkgPackage converts one status paragraph.
func dpkgPackage(p *debParagraph) (Package, error) {
	name, ok := p.get("Package")
	if !ok {
		return Package{}, errorAt(p.line, fmt.Errorf("paragraph: %w Package", errMissingField))
	}
	if err := checkDpkgName(name.value); err != nil {
		return Package{}, fieldError(name, err)
	}
	pkg := Package{Name: name.value}
	status, ok := p.get("Status")
	if !ok {
		return Package{}, errorAt(p.line, fmt.Errorf("package %s: %w Status", pkg.Name, errMissingField))
	}
	onDisk, err := checkDpkgStatus(status.value)
	if err != nil {
		return Package{}, fieldError(status, err)
	}
	pkg.Status = status.value
	if f, ok := p.get("Architecture"); ok {
		pkg.Arch = f.value
	}
	if f, ok := p.get("Version"); ok {
		if err := setDpkgVersion(&pkg, f.value); err != nil {
			return Package{}, fieldError(f, err)
		}
	} else if onDisk {
		return Package{}, errorAt(p.line, fmt.Errorf("package %s: %w Version", pkg.Name, errMissingField))
	}
	if err := setDpkgSize(&pkg, p); err != nil {
		return Package{}, err
	}
	if err := setDpkgRelations(&pkg, p); err != nil {
		return Package{}, err
	}
	pkg.Source = pkg.Name
	if f, ok := p.get("Source"); ok && f.value != "" {
		pkg.Source, _, _ = strings.Cut(f.value, " ")
	}
	if f, ok := p.get("Description"); ok {
		pkg.Description = f.value
	}
	return pkg, nil
}

// checkDpkgStatus validates "want flag state" and says whether the state
// leaves the package's files on disk.
func checkDpkgStatus(s string) (bool, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return false, fmt.Errorf("want three words, got %q", clipString(s))
	}
	onDisk, known := dpkgStates[f[2]]
	if !dpkgWants[f[0]] || !dpkgFlags[f[1]] || !known {
		return false, fmt.Errorf("unknown status %q", clipString(s))
	}
	return onDisk, nil
}

// setDpkgVersion splits "[epoch:]upstream[-revision]".
func setDpkgVersion(pkg *Package, v string) error {
	if v == "" || strings.ContainsAny(v, " \t") {
		return fmt.Errorf("invalid version %q", clipString(v))
	}
	pkg.Version = v
	rest := v
	if e, after, ok := strings.Cut(v, ":"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid epoch in version %q", clipString(v))
		}
		pkg.Epoch, rest = n, after
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		pkg.UpstreamVersion, pkg.Release = rest[:i], rest[i+1:]
	} else {
		pkg.UpstreamVersion = rest
	}
	if pkg.UpstreamVersion == "" {
		return fmt.Errorf("empty upstream version in %q", clipString(v))
	}
	return nil
}

// setDpkgSize reads Installed-Size, which dpkg gives in KiB.
func setDpkgSize(pkg *Package, p *debParagraph) error {
	f, ok := p.get("Installed-Size")
	if !ok || f.value == "" {
		return nil
	}
	kib, err := strconv.ParseInt(f.value, 10, 64)
	if err != nil || kib < 0 || kib > math.MaxInt64/1024 {
		return fieldError(f, fmt.Errorf("invalid size %q", clipString(f.value)))
	}
	pkg.InstalledSize = kib * 1024
	return nil
}

// dpkgEdgeFields are the relationship fields that are edges, in the order
// their Deps are listed.
var dpkgEdgeFields = []struct {
	field string
	kind  DepKind
}{
	{"Pre-Depends", PreDepends},
	{"Depends", Depends},
	{"Recommends", Recommends},
}

func setDpkgRelations(pkg *Package, p *debParagraph) error {
	for _, ef := range dpkgEdgeFields {
		f, ok := p.get(ef.field)
		if !ok {
			continue
		}
		deps, err := ParseDpkgDepends(f.full(), ef.kind)
		if err != nil {
			return fieldError(f, err)
		}
		pkg.Depends = append(pkg.Depends, deps...)
	}
	if f, ok := p.get("Provides"); ok {
		rels, err := parseDpkgProvides(f.full())
		if err != nil {
			return fieldError(f, err)
		}
		pkg.Provides = rels
	}
	return nil
}

// extendedStates holds apt's auto-installed marks by package name.
type extendedStates map[string][]archMark

type archMark struct {
	arch string
	auto bool
}

// isAuto reports apt's mark for a package; apt records "Architecture: all"
// packages under the native architecture, so those match any entry.
func (e extendedStates) isAuto(name, arch string) bool {
	marks := e[name]
	for _, m := range marks {
		if m.arch == arch {
			return m.auto
		}
	}
	if (arch == "all" || arch == "") && len(marks) > 0 {
		return marks[0].auto
	}
	return false
}

// readExtendedStates returns nil, nil when the file does not exist.
func readExtendedStates(r *rootfs.Root, name string) (extendedStates, error) {
	f, err := r.OpenBounded(name, maxExtendedStates)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	states := extendedStates{}
	err = readDeb822(f, maxLineSize, maxExtendedStates, func(p *debParagraph) error {
		name, ok := p.get("Package")
		if !ok {
			return errorAt(p.line, fmt.Errorf("paragraph: %w Package", errMissingField))
		}
		arch, _ := p.get("Architecture")
		auto, _ := p.get("Auto-Installed")
		states[name.value] = append(states[name.value], archMark{arch: arch.value, auto: auto.value == "1"})
		return nil
	})
	return states, withFile(err, f.Name())
}
