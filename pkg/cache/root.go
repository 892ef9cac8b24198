package cache

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultRoot is the cache root when none is given (`--cache-dir`).
const DefaultRoot = "/var/cache/vm2image"

// Kind names a cache kind: a subdirectory of the root.
type Kind string

// The cache kinds.
const (
	// Layers are packages layers keyed by base, package set and repositories (keyed entries).
	Layers Kind = "layers"
	// Roots are unpacked base images and bases with a packages layer applied (keyed entries).
	Roots Kind = "roots"
	// Images is the blob store of base image layers and downloaded root filesystems (a store
	// held as a whole while a conversion or a verify runs).
	Images Kind = "images"
	// AptArchives are downloaded .deb files shared between builds (a store held while a build
	// links files in or out).
	AptArchives Kind = "apt-archives"
)

// Kinds lists every cache kind.
var Kinds = []Kind{Layers, Roots, Images, AptArchives}

// StoreLock is the lock file of a store kind (Images, AptArchives), inside its directory.
const StoreLock = ".lock"

// Root is a cache root directory holding every kind.
type Root string

// RootOrDefault is dir, or DefaultRoot when dir is empty.
func RootOrDefault(dir string) Root {
	if dir == "" {
		return DefaultRoot
	}
	return Root(filepath.Clean(dir))
}

// Path is the directory of kind k.
func (r Root) Path(k Kind) string { return filepath.Join(string(r), string(k)) }

// Open makes the root and kind k's directory private (created, or tightened with a note) and
// returns the kind's directory.
func (r Root) Open(k Kind, notef func(string, ...any)) (string, error) {
	if err := MkdirPrivate(string(r), notef); err != nil {
		return "", err
	}
	p := r.Path(k)
	return p, MkdirPrivate(p, notef)
}

// Dir opens kind k (a keyed kind: Layers or Roots) as a Dir.
func (r Root) Dir(k Kind, valid func(entry string) error, notef func(string, ...any)) (Dir, error) {
	p, err := r.Open(k, notef)
	return Dir{Path: p, Valid: valid}, err
}

// UseStore holds store kind k (Images) in use until the lock is released: a prune leaves the
// whole kind alone meanwhile.
func (r Root) UseStore(ctx context.Context, k Kind, notef func(string, ...any)) (*Lock, error) {
	p, err := r.Open(k, notef)
	if err != nil {
		return nil, err
	}
	l, err := LockShared(ctx, filepath.Join(p, StoreLock))
	if err != nil {
		return nil, fmt.Errorf("holding the %s cache: %w", k, err)
	}
	l.touch()
	return l, nil
}

// Tighten makes the root and the kinds' directories that exist private, telling notef about
// each one it changes; it creates nothing.
func (r Root) Tighten(notef func(string, ...any)) error {
	for _, p := range append([]string{string(r)}, r.Path(Layers), r.Path(Roots), r.Path(Images), r.Path(AptArchives)) {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		if err := tighten(p, fi, notef); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
