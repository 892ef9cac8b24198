package pkgmgr

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"
)

const (
	pacmanLocalPath = "var/lib/pacman/local"
	maxDescSize     = 4 << 20   // one desc file (a few KiB in practice)
	maxPacmanTotal  = 256 << 20 // every desc file together
	maxPacmanDirs   = 200000    // package directories
)

// ReadPacman reads every ROOT/var/lib/pacman/local/*/desc, inside root and
// under size bounds.
func ReadPacman(root string) (*DB, error) { return inRoot(root, readPacman) }

func readPacman(r *rootfs.Root) (*DB, error) {
	ents, err := r.ReadDir(pacmanLocalPath)
	if err != nil {
		return nil, fmt.Errorf("reading pacman database: %w", err)
	}
	if len(ents) > maxPacmanDirs {
		return nil, fmt.Errorf("reading pacman database: /%s holds %d entries, over %d: %w", pacmanLocalPath, len(ents), maxPacmanDirs, ErrTooLarge)
	}
	b := &budget{what: "pacman desc files", left: maxPacmanTotal}
	pkgs := make([]Package, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() {
			continue // ALPM_DB_VERSION
		}
		pkg, err := readPacmanDesc(r, b, path.Join(pacmanLocalPath, e.Name(), "desc"))
		if err != nil {
			return nil, fmt.Errorf("reading pacman database: %w", err)
		}
		pkgs = append(pkgs, pkg)
	}
	sortPackages(pkgs)
	return &DB{Manager: Pacman, Packages: pkgs}, nil
}

func readPacmanDesc(r *rootfs.Root, b *budget, name string) (Package, error) {
	f, err := b.open(r, name, maxDescSize)
	if err != nil {
		return Package{}, err
	}
	defer f.Close()
	pkg, err := parsePacmanDesc(f, maxDescSize)
	return pkg, withFile(err, f.Name())
}

// ParsePacmanDesc parses one pacman local database desc file: "%KEY%" lines,
// each followed by its values, one a line, up to a blank line. It reads NAME,
// VERSION, ARCH, SIZE, REASON (absent or 0: explicit; 1: a dependency),
// DEPENDS, PROVIDES, BASE and DESC; OPTDEPENDS and the rest are not edges
// and are ignored.
func ParsePacmanDesc(r io.Reader) (Package, error) {
	return parsePacmanDesc(r, maxDescSize)
}

type descValues struct {
	line   int
	values []string
}

func parsePacmanDesc(r io.Reader, maxSize int64) (Package, error) {
	lr := newLineReader(r, maxLineSize, maxSize)
	sections := make(map[string]*descValues)
	var cur *descValues
	for {
		b, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Package{}, err
		}
		line := string(b)
		switch {
		case cur != nil && line == "":
			cur = nil
		case cur != nil:
			cur.values = append(cur.values, line)
		case line == "":
		case len(line) > 2 && line[0] == '%' && line[len(line)-1] == '%':
			if sections[line] != nil {
				return Package{}, lr.errorf("duplicate section %s", line)
			}
			cur = &descValues{line: lr.line}
			sections[line] = cur
		default:
			return Package{}, lr.errorf("want a %%KEY%% line, got %q", clip(b))
		}
	}
	return pacmanPackage(sections)
}

// pacmanPackage converts the sections of a desc file.
func pacmanPackage(s map[string]*descValues) (Package, error) {
	var pkg Package
	for _, f := range []struct {
		key      string
		dst      *string
		required bool
	}{
		{"%NAME%", &pkg.Name, true}, {"%VERSION%", &pkg.Version, true},
		{"%ARCH%", &pkg.Arch, false}, {"%BASE%", &pkg.Source, false}, {"%DESC%", &pkg.Description, false},
	} {
		v, err := single(s, f.key, f.required)
		if err != nil {
			return Package{}, err
		}
		*f.dst = v
	}
	if err := setPacmanVersion(&pkg); err != nil {
		return Package{}, errorAt(s["%VERSION%"].line, err)
	}
	if err := setPacmanNumbers(&pkg, s); err != nil {
		return Package{}, err
	}
	for _, f := range []struct {
		key string
		add func(Relation)
	}{
		{"%DEPENDS%", func(r Relation) { pkg.Depends = append(pkg.Depends, Dep{Kind: Depends, Alts: []Relation{r}}) }},
		{"%PROVIDES%", func(r Relation) { pkg.Provides = append(pkg.Provides, r) }},
	} {
		sec := s[f.key]
		if sec == nil {
			continue
		}
		for i, v := range sec.values {
			rel, err := parsePacmanRelation(v)
			if err != nil {
				return Package{}, errorAt(sec.line+1+i, fmt.Errorf("%s: %w", f.key, err))
			}
			f.add(rel)
		}
	}
	return pkg, nil
}

// single returns the one value of a section.
func single(s map[string]*descValues, key string, required bool) (string, error) {
	sec := s[key]
	switch {
	case (sec == nil || len(sec.values) == 0) && required:
		return "", errorAt(1, fmt.Errorf("%w %s", errMissingField, key))
	case sec == nil || len(sec.values) == 0:
		return "", nil // pacman writes an empty %DESC% as a key without value
	case len(sec.values) > 1:
		return "", errorAt(sec.line, fmt.Errorf("%s: want one value, got %d", key, len(sec.values)))
	}
	return sec.values[0], nil
}

// setPacmanNumbers reads SIZE (bytes) and REASON.
func setPacmanNumbers(pkg *Package, s map[string]*descValues) error {
	size, err := single(s, "%SIZE%", false)
	if err != nil {
		return err
	}
	if size != "" {
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || n < 0 {
			return errorAt(s["%SIZE%"].line+1, fmt.Errorf("invalid size %q", clipString(size)))
		}
		pkg.InstalledSize = n
	}
	reason, err := single(s, "%REASON%", false)
	if err != nil {
		return err
	}
	n := 0
	if reason != "" {
		if n, err = strconv.Atoi(reason); err != nil || n < 0 {
			return errorAt(s["%REASON%"].line+1, fmt.Errorf("invalid reason %q", clipString(reason)))
		}
	}
	pkg.Auto = boolPtr(n != 0)
	return nil
}

// setPacmanVersion splits "[epoch:]pkgver-pkgrel".
func setPacmanVersion(pkg *Package) error {
	rest := pkg.Version
	if e, after, ok := strings.Cut(rest, ":"); ok {
		n, err := strconv.Atoi(e)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid epoch in version %q", clipString(pkg.Version))
		}
		pkg.Epoch, rest = n, after
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 || i == len(rest)-1 {
		return fmt.Errorf("version %q is not pkgver-pkgrel", clipString(pkg.Version))
	}
	pkg.UpstreamVersion, pkg.Release = rest[:i], rest[i+1:]
	return nil
}

// parsePacmanRelation parses "name", "name>=1.0", "libfoo.so=1-64", as
// libalpm's alpm_dep_from_string does, dropping a ": description".
func parsePacmanRelation(s string) (Relation, error) {
	s, _, _ = strings.Cut(s, ": ")
	i := strings.IndexAny(s, "<>=")
	if i < 0 {
		if s == "" {
			return Relation{}, errors.New("empty relation")
		}
		return Relation{Name: s}, nil
	}
	rel := Relation{Name: s[:i]}
	rest := s[i:]
	n := 1
	if strings.HasPrefix(rest, ">=") || strings.HasPrefix(rest, "<=") {
		n = 2
	}
	rel.Op, rel.Version = rest[:n], rest[n:]
	if rel.Name == "" || rel.Version == "" {
		return Relation{}, fmt.Errorf("invalid relation %q", clipString(s))
	}
	return rel, nil
}
