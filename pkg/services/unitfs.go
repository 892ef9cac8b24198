package services

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// UnitPaths are systemd's unit search path for the system manager, highest priority first.
var UnitPaths = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
	"/lib/systemd/system", "/usr/lib/systemd/system"}

// WantsTargets are the targets whose .wants directories name the units a VM starts at boot.
var WantsTargets = []string{"multi-user.target", "graphical.target", "default.target"}

// TmpfilesPaths are the tmpfiles.d directories, highest priority first.
var TmpfilesPaths = []string{"/etc/tmpfiles.d", "/run/tmpfiles.d", "/usr/local/lib/tmpfiles.d", "/usr/lib/tmpfiles.d", "/lib/tmpfiles.d"}

// MemFS is a read-only in-memory file tree of a VM's files (what the converter fetched through
// its source): absolute, clean paths to regular files, directories and symlinks. Symlinks are
// resolved inside the tree only, never on the host.
type MemFS struct {
	files map[string]memFile
}

type memFile struct {
	dir  bool
	link string // symlink target when not ""
	data []byte
}

// NewMemFS returns an empty tree.
func NewMemFS() *MemFS { return &MemFS{files: map[string]memFile{"/": {dir: true}}} }

// AddFile adds a regular file (and its parent directories).
func (m *MemFS) AddFile(p string, data []byte) { m.add(p, memFile{data: data}) }

// AddDir adds a directory.
func (m *MemFS) AddDir(p string) { m.add(p, memFile{dir: true}) }

// AddSymlink adds a symlink to target (absolute, or relative to the link's directory).
func (m *MemFS) AddSymlink(p, target string) { m.add(p, memFile{link: target}) }

func (m *MemFS) add(p string, f memFile) {
	p = path.Clean("/" + p)
	for d := path.Dir(p); ; d = path.Dir(d) {
		if _, ok := m.files[d]; !ok {
			m.files[d] = memFile{dir: true}
		}
		if d == "/" {
			break
		}
	}
	m.files[p] = f
}

const maxLinks = 40

// resolve follows symlinks in every element of p inside the tree.
func (m *MemFS) resolve(p string, followLast bool) (string, error) {
	p = path.Clean("/" + p)
	hops := 0
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i := 0; i < len(parts); i++ {
		if parts[i] == "" {
			continue
		}
		next := path.Join(cur, parts[i])
		f, ok := m.files[next]
		if ok && f.link != "" && (i < len(parts)-1 || followLast) {
			if hops++; hops > maxLinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target := f.link
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := append(strings.Split(strings.TrimPrefix(path.Clean(target), "/"), "/"), parts[i+1:]...)
			parts, cur, i = rest, "/", -1
			continue
		}
		cur = next
	}
	return cur, nil
}

// ReadFile returns a file's contents, following symlinks inside the tree.
func (m *MemFS) ReadFile(p string) ([]byte, error) {
	r, err := m.resolve(p, true)
	if err != nil {
		return nil, err
	}
	f, ok := m.files[r]
	if !ok || f.dir {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
	}
	return f.data, nil
}

// Readlink returns a symlink's target, following symlinks in the parent directories.
func (m *MemFS) Readlink(p string) (string, bool) {
	r, err := m.resolve(p, false)
	if err != nil {
		return "", false
	}
	f, ok := m.files[r]
	return f.link, ok && f.link != ""
}

// Exists reports whether p names anything (a dangling symlink counts).
func (m *MemFS) Exists(p string) bool {
	r, err := m.resolve(p, false)
	_, ok := m.files[r]
	return err == nil && ok
}

// ReadDir returns the names in a directory, sorted, following symlinks to it.
func (m *MemFS) ReadDir(p string) []string {
	r, err := m.resolve(p, true)
	if err != nil {
		return nil
	}
	if f, ok := m.files[r]; !ok || !f.dir {
		return nil
	}
	var out []string
	prefix := strings.TrimSuffix(r, "/") + "/"
	for k := range m.files {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" && !strings.Contains(rest, "/") {
			out = append(out, rest)
		}
	}
	slices.Sort(out)
	return out
}

// LoadUnit reads a unit and its drop-ins from the VM's tree: the fragment is the first found
// along UnitPaths (an instance "a@b.service" falls back to its template "a@.service"); a
// fragment linked to /dev/null is masked (ErrMasked). Drop-ins "*.conf" come from NAME.d,
// the template's TEMPLATE.d and the type-wide "service.d" in every search directory; a file
// name found in several directories is taken from the first, and all are applied in file
// name order after the fragment.
func LoadUnit(m *MemFS, name string) (*Unit, error) {
	names := []string{name}
	if t := templateOf(name); t != "" {
		names = append(names, t)
	}
	frag := ""
	for _, n := range names {
		if frag = findFragment(m, n); frag != "" {
			break
		}
	}
	if frag == "" {
		return nil, fmt.Errorf("%w: %s", ErrNoUnit, name)
	}
	if r, err := m.resolve(frag, true); err == nil && r == "/dev/null" {
		return nil, fmt.Errorf("%w: %s", ErrMasked, name)
	}
	b, err := m.ReadFile(frag)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", frag, err)
	}
	u := &Unit{Name: name}
	if err := u.ParseUnit(frag, b); err != nil {
		return nil, err
	}
	for _, d := range dropIns(m, name) {
		b, err := m.ReadFile(d)
		if err != nil {
			continue // a dangling link, or a link to /dev/null: no assignments
		}
		if err := u.ParseUnit(d, b); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func findFragment(m *MemFS, name string) string {
	for _, dir := range UnitPaths {
		if p := path.Join(dir, name); m.Exists(p) {
			return p
		}
	}
	return ""
}

// templateOf returns "a@.service" for "a@b.service", else "".
func templateOf(name string) string {
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	if at < 0 || dot < at || at+1 == dot {
		return ""
	}
	return name[:at+1] + name[dot:]
}

func dropIns(m *MemFS, name string) []string {
	dirs := []string{name + ".d"}
	if t := templateOf(name); t != "" {
		dirs = append(dirs, t+".d")
	}
	if dot := strings.LastIndexByte(name, '.'); dot >= 0 {
		dirs = append([]string{name[dot+1:] + ".d"}, dirs...)
	}
	byName := map[string]string{}
	for _, sp := range UnitPaths {
		for _, d := range dirs {
			for _, f := range m.ReadDir(path.Join(sp, d)) {
				if _, seen := byName[f]; !seen && strings.HasSuffix(f, ".conf") {
					byName[f] = path.Join(sp, d, f)
				}
			}
		}
	}
	keys := make([]string, 0, len(byName))
	for k := range byName {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = byName[k]
	}
	return out
}

// EnabledUnits returns the services the VM starts at boot: the .service entries of the
// WantsTargets' .wants directories along UnitPaths, and what the known generators make those
// want (generators.go), sorted and unique, masked ones left out.
func EnabledUnits(m *MemFS) []string {
	var out []string
	for _, sp := range UnitPaths {
		for _, t := range WantsTargets {
			for _, n := range m.ReadDir(path.Join(sp, t+".wants")) {
				if strings.HasSuffix(n, ".service") && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	for _, n := range generatedWants(m, out) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.DeleteFunc(out, func(n string) bool {
		_, err := LoadUnit(m, n)
		return errors.Is(err, ErrMasked)
	})
}
