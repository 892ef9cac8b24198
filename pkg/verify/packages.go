package verify

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// packageFiles are the files package databases are read from (pkgmgr's readers), and the
// os-release files that decide between several.
var packageFiles = []string{
	"var/lib/dpkg/status", "var/lib/apt/extended_states", "lib/apk/db/installed", "etc/apk/world",
	"etc/os-release", "usr/lib/os-release",
}

// packageDirs hold database files whatever their names.
var packageDirs = []string{"var/lib/dpkg/updates/", "var/lib/pacman/local/", "var/lib/rpm/", "usr/lib/sysimage/rpm/"}

func isPackageFile(p string) bool {
	for _, f := range packageFiles {
		if p == f {
			return true
		}
	}
	for _, d := range packageDirs {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// stager copies the image's package-database files, as they stream by, into a small directory
// that pkgmgr reads like a root: the same readers the agent uses on the VM, so both sides are
// read alike. Only these few files ever reach the disk. Each layer's version of a file goes to a
// file of its own; the one the flattened image ends with is picked by its digest.
type stager struct {
	dir      string
	versions map[string][]staged // by path
	cur      *os.File
	curPath  string
	links    map[string]string // symlinks among the database paths: path -> target
	err      error
}

type staged struct {
	file   string
	digest [sha256.Size]byte
}

func newStager() (*stager, error) {
	dir, err := os.MkdirTemp("", "vm2image-verify-pkgdb-")
	if err != nil {
		return nil, fmt.Errorf("creating package database directory: %w", err)
	}
	return &stager{dir: dir, versions: map[string][]staged{}, links: map[string]string{}}, nil
}

// file returns where to copy the contents of p, or nil when p is not a database file.
func (s *stager) file(p string) *os.File {
	if s == nil || s.err != nil || !isPackageFile(p) {
		return nil
	}
	f, err := os.CreateTemp(s.dir, "v-*")
	if err != nil {
		s.err = fmt.Errorf("staging %s: %w", p, err)
		return nil
	}
	s.cur, s.curPath = f, p
	return f
}

// done records the copy of p that file returned, whose contents hash to digest.
func (s *stager) done(p string, digest [sha256.Size]byte) error {
	f := s.cur
	s.cur = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("staging %s: %w", p, err)
	}
	s.versions[p] = append(s.versions[p], staged{file: f.Name(), digest: digest})
	return nil
}

// symlink records a symlink among the database paths (os-release is one on Debian).
func (s *stager) symlink(p, target string) {
	if s != nil && (isPackageFile(p) || isPackageFile(p+"/")) {
		s.links[p] = target
	}
}

// finish lays out, under root, the versions of the files the flattened tree t ends with.
func (s *stager) finish(t *tree) (root string, err error) {
	if s.err != nil {
		return "", s.err
	}
	root = filepath.Join(s.dir, "root")
	for p, vs := range s.versions {
		n := lookupTree(t, p)
		if n == nil || n.typ != fsmeta.TypeRegular {
			continue
		}
		for i := len(vs) - 1; i >= 0; i-- {
			if vs[i].digest == n.digest {
				if err := placeFile(root, p, func(dst string) error { return os.Rename(vs[i].file, dst) }); err != nil {
					return "", err
				}
				break
			}
		}
	}
	for p, target := range s.links {
		if n := lookupTree(t, p); n != nil && n.typ == fsmeta.TypeSymlink && n.extra.target == target {
			if err := placeFile(root, p, func(dst string) error { return os.Symlink(target, dst) }); err != nil {
				return "", err
			}
		}
	}
	return root, os.MkdirAll(root, 0o755)
}

func placeFile(root, p string, make func(dst string) error) error {
	dst := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("staging %s: %w", p, err)
	}
	if err := make(dst); err != nil {
		return fmt.Errorf("staging %s: %w", p, err)
	}
	return nil
}

func (s *stager) close() {
	if s != nil {
		if s.cur != nil {
			s.cur.Close()
		}
		os.RemoveAll(s.dir)
	}
}

func lookupTree(t *tree, p string) *node {
	n := t.root
	for _, c := range strings.Split(path.Clean(p), "/") {
		if n = n.children[c]; n == nil {
			return nil
		}
	}
	return n
}

// comparePackages compares the installed packages (name, arch, version) of both databases.
// A side without a database counts as holding no package; the report says so in a note.
func comparePackages(ctx context.Context, vmDB *pkgmgr.DB, vmErr error, imageRoot string, r *Report) {
	imgDB, imgErr := pkgmgr.Read(ctx, imageRoot)
	switch {
	case vmErr != nil && imgErr != nil:
		r.note("packages not compared: the VM's database: %v; the image's: %v", vmErr, imgErr)
		return
	case vmErr != nil:
		r.note("the VM's package database cannot be read: %v", vmErr)
		vmDB = &pkgmgr.DB{}
	case imgErr != nil:
		r.note("the image's package database cannot be read: %v", imgErr)
		imgDB = &pkgmgr.DB{}
	}
	vm, img := packageIndex(vmDB), packageIndex(imgDB)
	r.Packages.VM, r.Packages.Image = len(vm), len(img)
	keys := make([]string, 0, len(vm)+len(img))
	for k := range vm {
		keys = append(keys, k)
	}
	for k := range img {
		if _, ok := vm[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, inVM := vm[k]
		i, inImg := img[k]
		switch {
		case !inImg:
			r.add(Difference{Kind: KindPackageMissing, Path: k, VM: v})
		case !inVM:
			r.add(Difference{Kind: KindPackageExtra, Path: k, Image: i})
		case v != i:
			r.add(Difference{Kind: KindPackageVersion, Path: k, VM: v, Image: i})
		}
	}
}

// packageIndex maps "name:arch" to the version.
func packageIndex(db *pkgmgr.DB) map[string]string {
	m := make(map[string]string, len(db.Packages))
	for _, p := range db.Packages {
		m[p.Name+":"+p.Arch] = p.Version
	}
	return m
}
