package pkgmgr

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"

	// The pure-Go SQLite driver: it registers "sqlite", the name go-rpmdb
	// uses too, and needs no cgo.
	_ "github.com/glebarez/go-sqlite"
	"github.com/knqyf263/go-rpmdb/pkg/bdb"
	dbi "github.com/knqyf263/go-rpmdb/pkg/db"
	"github.com/knqyf263/go-rpmdb/pkg/ndb"
)

// rpmDBDirs are where rpmdbs live under a root, the newer location first
// (Fedora 36+ and openSUSE link var/lib/rpm to it).
var rpmDBDirs = []string{"usr/lib/sysimage/rpm", "var/lib/rpm"}

// rpmDBFiles are the backends' files, the newer backend first: SQLite (rpm
// 4.16+), NDB (SUSE), Berkeley DB (older).
var rpmDBFiles = []string{"rpmdb.sqlite", "Packages.db", "Packages"}

// findRPMDB returns the name of the rpmdb in the root.
func findRPMDB(r *rootfs.Root) (string, error) {
	for _, dir := range rpmDBDirs {
		for _, name := range rpmDBFiles {
			p := path.Join(dir, name)
			if r.IsFile(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("finding rpmdb under %s: %w", r.Dir(), ErrNoDatabase)
}

// ReadRPM reads the rpmdb under root, whichever its backend. Auto is nil:
// rpm does not record why a package was installed.
//
// Depends holds Requires (kind "depends") and Recommends (kind "recommends"),
// without rpmlib(...) requires, which rpm itself satisfies. File requires
// ("/bin/sh") are kept: each package owning a required path gets it as a
// Provides, so every edge resolves by name as rpm resolves it by file list.
//
// The database is found and opened inside root (see hostPath for how the
// backends, which open files by name, are given it).
func ReadRPM(root string) (*DB, error) { return inRoot(root, readRPM) }

func readRPM(r *rootfs.Root) (*DB, error) {
	name, err := findRPMDB(r)
	if err != nil {
		return nil, fmt.Errorf("reading rpmdb: %w", err)
	}
	file, done, err := hostPath(r, name)
	if err != nil {
		return nil, fmt.Errorf("reading rpmdb: %w", err)
	}
	defer done()
	pkgs, err := readRPMDB(file)
	if err != nil {
		return nil, fmt.Errorf("reading rpmdb /%s: %w", name, errors.Unwrap(err))
	}
	return &DB{Manager: RPM, Packages: pkgs}, nil
}

// readRPMDB reads one rpmdb file (rpmdb.sqlite, Packages.db or Packages) and
// returns its packages sorted.
func readRPMDB(path string) ([]Package, error) {
	var (
		pkgs  []Package
		files [][]string
	)
	err := eachRPMHeader(path, func(blob []byte) error {
		h, err := parseRPMHeader(blob)
		if err != nil {
			return err
		}
		pkg, err := rpmPackage(h)
		if err != nil {
			return err
		}
		fl, err := rpmFiles(h)
		if err != nil {
			return fmt.Errorf("package %s: %w", pkg.Name, err)
		}
		pkgs = append(pkgs, pkg)
		files = append(files, fl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading rpmdb %s: %w", path, err)
	}
	addFileProvides(pkgs, files)
	sortPackages(pkgs)
	return pkgs, nil
}

// eachRPMHeader calls fn with every header blob of an rpmdb, choosing the
// backend by the file's magic number.
func eachRPMHeader(path string, fn func([]byte) error) error {
	magic, err := readMagic(path, 16)
	if err != nil {
		return err
	}
	switch {
	case bytes.Equal(magic, []byte("SQLite format 3\x00")):
		return eachSQLiteHeader(path, fn)
	case len(magic) >= 4 && binary.LittleEndian.Uint32(magic) == ndb.NDB_HeaderMagic:
		db, err := ndb.Open(path)
		if err != nil {
			return fmt.Errorf("opening ndb: %w", err)
		}
		defer db.Close()
		return drainEntries(db.Read(), fn)
	default:
		db, err := bdb.Open(path)
		if err != nil {
			return fmt.Errorf("opening berkeley db: %w", err)
		}
		defer db.Close()
		return drainEntries(db.Read(), fn)
	}
}

func readMagic(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	m, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b[:m], nil
}

// drainEntries feeds go-rpmdb's entries to fn and reads the channel to its
// end even after an error, so the producing goroutine always finishes.
func drainEntries(entries <-chan dbi.Entry, fn func([]byte) error) error {
	var first error
	for e := range entries {
		if first != nil {
			continue
		}
		if e.Err != nil {
			first = e.Err
			continue
		}
		first = fn(e.Value)
	}
	return first
}

// eachSQLiteHeader reads the Packages table without writing anything next
// to the database: see sqliteDSN.
func eachSQLiteHeader(path string, fn func([]byte) error) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	dsn := sqliteDSN(abs)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("opening sqlite: %w", err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT blob FROM Packages")
	if err != nil {
		return fmt.Errorf("querying sqlite: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return fmt.Errorf("scanning sqlite: %w", err)
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	return rows.Err()
}

// sqliteDSN chooses how to open an rpmdb.sqlite, which rpm keeps in WAL mode.
// SQLite creates the -wal and -shm files even for a read-only connection, so
// while the WAL is absent or empty (rpm checkpoints it when it closes the
// database) the file is opened immutable: no lock, no file created. A
// non-empty WAL holds committed transactions not yet in the main file (an rpm
// or dnf still running); only then is it opened read-only, which reads the
// WAL through the existing -shm.
func sqliteDSN(abs string) string {
	q := "immutable=1"
	if fi, err := os.Stat(abs + "-wal"); err == nil && fi.Size() > 0 {
		q = "mode=ro"
	}
	return (&url.URL{Scheme: "file", Path: abs, RawQuery: q}).String()
}

// rpmPackage converts a header.
func rpmPackage(h *rpmHeader) (Package, error) {
	var pkg Package
	var err error
	for _, f := range []struct {
		tag uint32
		dst *string
	}{
		{tagName, &pkg.Name}, {tagVersion, &pkg.UpstreamVersion}, {tagRelease, &pkg.Release},
		{tagArch, &pkg.Arch}, {tagSummary, &pkg.Description}, {tagSourceRPM, &pkg.Source},
	} {
		if *f.dst, err = h.str(f.tag); err != nil {
			return Package{}, err
		}
	}
	if pkg.Name == "" {
		return Package{}, fmt.Errorf("%w: no name", errBadHeader)
	}
	if err := setRPMNumbers(&pkg, h); err != nil {
		return Package{}, fmt.Errorf("package %s: %w", pkg.Name, err)
	}
	pkg.Version = pkg.UpstreamVersion
	if pkg.Release != "" {
		pkg.Version += "-" + pkg.Release
	}
	if pkg.Epoch > 0 {
		pkg.Version = strconv.Itoa(pkg.Epoch) + ":" + pkg.Version
	}
	pkg.Source = sourceRPMName(pkg.Source)
	pkg.Description, _, _ = strings.Cut(pkg.Description, "\n")
	if err := setRPMRelations(&pkg, h); err != nil {
		return Package{}, fmt.Errorf("package %s: %w", pkg.Name, err)
	}
	return pkg, nil
}

// setRPMNumbers reads the epoch and the installed size (LONGSIZE when
// present, else SIZE).
func setRPMNumbers(pkg *Package, h *rpmHeader) error {
	epoch, _, err := h.ints(tagEpoch)
	if err != nil {
		return err
	}
	if len(epoch) > 0 {
		if epoch[0] > 1<<31-1 {
			return fmt.Errorf("%w: epoch %d", errBadHeader, epoch[0])
		}
		pkg.Epoch = int(epoch[0])
	}
	for _, tag := range []uint32{tagLongSize, tagSize} {
		size, _, err := h.ints(tag)
		if err != nil {
			return err
		}
		if len(size) > 0 {
			pkg.InstalledSize = size[0]
			break
		}
	}
	return nil
}

func setRPMRelations(pkg *Package, h *rpmHeader) error {
	reqs, flags, err := h.relations(tagRequireName, tagRequireFlags, tagRequireVersion)
	if err != nil {
		return err
	}
	recs, _, err := h.relations(tagRecommendName, tagRecommendFlags, tagRecommendVer)
	if err != nil {
		return err
	}
	provs, _, err := h.relations(tagProvideName, tagProvideFlags, tagProvideVersion)
	if err != nil {
		return err
	}
	seen := make(map[depKey]bool)
	for i, r := range reqs {
		if flags[i]&senseRPMLib != 0 || strings.HasPrefix(r.Name, "rpmlib(") {
			continue
		}
		pkg.Depends = appendDep(pkg.Depends, seen, Depends, r)
	}
	for _, r := range recs {
		pkg.Depends = appendDep(pkg.Depends, seen, Recommends, r)
	}
	pkg.Provides = provs
	return nil
}

// depKey identifies a single-alternative edge, to drop the duplicates rpm
// keeps for Requires(pre), Requires(post) and plain Requires of one name.
type depKey struct {
	kind DepKind
	rel  Relation
}

func appendDep(deps []Dep, seen map[depKey]bool, kind DepKind, r Relation) []Dep {
	k := depKey{kind, r}
	if seen[k] {
		return deps
	}
	seen[k] = true
	return append(deps, Dep{Kind: kind, Alts: []Relation{r}})
}

// rpmFiles returns the paths a package owns.
func rpmFiles(h *rpmHeader) ([]string, error) {
	base, _, err := h.strs(tagBasenames)
	if err != nil {
		return nil, err
	}
	if len(base) == 0 {
		old, _, err := h.strs(tagOldFilenames)
		return old, err
	}
	dirs, _, err := h.strs(tagDirnames)
	if err != nil {
		return nil, err
	}
	idx, _, err := h.ints(tagDirIndexes)
	if err != nil {
		return nil, err
	}
	if len(idx) != len(base) {
		return nil, fmt.Errorf("%w: %d basenames, %d dir indexes", errBadHeader, len(base), len(idx))
	}
	paths := make([]string, len(base))
	for i, b := range base {
		if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
			return nil, fmt.Errorf("%w: dir index %d out of range", errBadHeader, idx[i])
		}
		paths[i] = dirs[idx[i]] + b
	}
	return paths, nil
}

// addFileProvides gives each package a Provides for every path it owns that
// some package requires.
func addFileProvides(pkgs []Package, files [][]string) {
	need := make(map[string]bool)
	for _, p := range pkgs {
		for _, d := range p.Depends {
			for _, a := range d.Alts {
				if strings.HasPrefix(a.Name, "/") {
					need[a.Name] = true
				}
			}
		}
	}
	if len(need) == 0 {
		return
	}
	for i := range pkgs {
		have := make(map[string]bool)
		for _, r := range pkgs[i].Provides {
			have[r.Name] = true
		}
		for _, f := range files[i] {
			if need[f] && !have[f] {
				pkgs[i].Provides = append(pkgs[i].Provides, Relation{Name: f})
				have[f] = true
			}
		}
	}
}

// sourceRPMName returns "bash" for "bash-5.1.8-1.cm2.src.rpm".
func sourceRPMName(srpm string) string {
	s := strings.TrimSuffix(strings.TrimSuffix(srpm, ".src.rpm"), ".nosrc.rpm")
	if s == srpm || s == "" {
		return ""
	}
	for range 2 { // drop -release, then -version
		i := strings.LastIndexByte(s, '-')
		if i <= 0 {
			return ""
		}
		s = s[:i]
	}
	return s
}
