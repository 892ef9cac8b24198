package pkgmgr

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"
)

const (
	apkInstalledPath = "lib/apk/db/installed"
	apkWorldPath     = "etc/apk/world"

	// maxAPKInstalled bounds the installed database, which lists every file
	// of every package (a large system's is a few tens of MiB).
	maxAPKInstalled = 128 << 20
)

// ReadAPK reads ROOT/lib/apk/db/installed and marks as auto-installed every
// package that ROOT/etc/apk/world does not name (Auto stays nil without a
// world file). Every file is read inside root, under a size bound.
func ReadAPK(root string) (*DB, error) { return inRoot(root, readAPK) }

func readAPK(r *rootfs.Root) (*DB, error) {
	f, err := r.OpenBounded(apkInstalledPath, maxAPKInstalled)
	if err != nil {
		return nil, fmt.Errorf("reading apk database: %w", err)
	}
	defer f.Close()
	pkgs, err := ParseAPKInstalled(f)
	if err != nil {
		return nil, fmt.Errorf("reading apk database: %w", withFile(err, f.Name()))
	}
	world, err := readAPKWorld(r, apkWorldPath)
	if err != nil {
		return nil, fmt.Errorf("reading apk world: %w", err)
	}
	if world != nil {
		markAPKAuto(pkgs, world)
	}
	sortPackages(pkgs)
	return &DB{Manager: APK, Packages: pkgs}, nil
}

// markAPKAuto marks packages that world names neither directly nor through
// a name they provide.
func markAPKAuto(pkgs []Package, world map[string]bool) {
	real := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		real[p.Name] = true
	}
	for i, p := range pkgs {
		manual := world[p.Name]
		for _, r := range p.Provides {
			manual = manual || (world[r.Name] && !real[r.Name])
		}
		pkgs[i].Auto = boolPtr(!manual)
	}
}

// readAPKWorld returns the names in a world file (constraints and
// repository tags stripped, conflicts skipped); nil, nil when absent.
func readAPKWorld(r *rootfs.Root, name string) (map[string]bool, error) {
	f, err := r.OpenBounded(name, rootfs.ConfigLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	world := make(map[string]bool)
	for _, w := range strings.Fields(string(data)) {
		if strings.HasPrefix(w, "!") {
			continue
		}
		name := w[:len(w)-len(strings.TrimLeft(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+.:/"))]
		if name != "" {
			world[name] = true
		}
	}
	return world, nil
}

// ParseAPKInstalled parses apk's installed database: blocks of "K:value"
// lines separated by blank lines. It reads P (name), V (version), A (arch),
// I (installed size), D (dependencies; "!name" conflicts are not edges),
// p (provides), o (origin) and T (description), and ignores the rest.
func ParseAPKInstalled(r io.Reader) ([]Package, error) {
	lr := newLineReader(r, maxLineSize, maxFileSize)
	var (
		pkgs  []Package
		cur   Package
		start int
	)
	flush := func() error {
		if start == 0 {
			return nil
		}
		if cur.Name == "" || cur.Version == "" {
			return errorAt(start, errors.New("block without P: or V:"))
		}
		pkgs = append(pkgs, cur)
		cur, start = Package{}, 0
		return nil
	}
	for {
		b, err := lr.next()
		if err == io.EOF {
			return pkgs, flush()
		}
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if len(b) < 2 || b[1] != ':' {
			return nil, lr.errorf("want a K:value line, got %q", clip(b))
		}
		if start == 0 {
			start = lr.line
		}
		if err := setAPKField(&cur, b[0], string(b[2:])); err != nil {
			return nil, lr.errorf("%c: %w", b[0], err)
		}
	}
}

func setAPKField(p *Package, key byte, v string) error {
	switch key {
	case 'P':
		if p.Name != "" {
			return errors.New("second package name in one block")
		}
		if v == "" {
			return errors.New("empty package name")
		}
		p.Name = v
	case 'V':
		if p.Version != "" {
			return errors.New("second version in one block")
		}
		setAPKVersion(p, v)
	case 'A':
		p.Arch = v
	case 'I':
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid size %q", clipString(v))
		}
		p.InstalledSize = n
	case 'D':
		return addAPKDepends(p, v)
	case 'p':
		for _, w := range strings.Fields(v) {
			rel, err := parseAPKRelation(w)
			if err != nil {
				return err
			}
			p.Provides = append(p.Provides, rel)
		}
	case 'o':
		p.Source = v
	case 'T':
		p.Description = v
	}
	return nil
}

// setAPKVersion splits "1.2.2-r3" into upstream "1.2.2" and release "r3".
func setAPKVersion(p *Package, v string) {
	p.Version = v
	p.UpstreamVersion = v
	i := strings.LastIndex(v, "-r")
	if i > 0 && i+2 < len(v) && strings.Trim(v[i+2:], "0123456789") == "" {
		p.UpstreamVersion, p.Release = v[:i], v[i+1:]
	}
}

func addAPKDepends(p *Package, v string) error {
	for _, w := range strings.Fields(v) {
		if strings.HasPrefix(w, "!") {
			continue // a conflict, not an edge
		}
		rel, err := parseAPKRelation(w)
		if err != nil {
			return err
		}
		p.Depends = append(p.Depends, Dep{Kind: Depends, Alts: []Relation{rel}})
	}
	return nil
}

// parseAPKRelation parses "name", "name>=1.2", "so:libc.musl-x86_64.so.1=1",
// dropping an "@tag" repository pin.
func parseAPKRelation(s string) (Relation, error) {
	i := strings.IndexAny(s, "<>=~@")
	if i < 0 {
		return Relation{Name: s}, nil
	}
	if i == 0 {
		return Relation{}, fmt.Errorf("missing name in %q", clipString(s))
	}
	rel := Relation{Name: s[:i]}
	rest := s[i:]
	if rest[0] == '@' {
		j := strings.IndexAny(rest, "<>=~")
		if j < 0 {
			return rel, nil
		}
		rest = rest[j:]
	}
	j := len(rest) - len(strings.TrimLeft(rest, "<>=~"))
	rel.Op, rel.Version = rest[:j], rest[j:]
	if rel.Version == "" {
		return Relation{}, fmt.Errorf("missing version in %q", clipString(s))
	}
	return rel, nil
}
