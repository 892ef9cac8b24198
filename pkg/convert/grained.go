package convert

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vm2image/vm2image/pkg/builder"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/debfile"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/source"
)

// Package-grained layers (Options.PackageLayers grained): instead of one packages layer, each
// installed package's payload (the files its package file ships: a .deb, a pacman .pkg.tar.*,
// an .rpm, grained_archive.go; under the excludes) is a layer whose bytes depend only on the
// package file, so every image that installs the same package version holds the same blob and
// a registry stores it once; the packages that do not get a layer of their own (the layer
// budget) share one bundle layer; a last configuration layer holds what installing them did
// beyond their payloads (the package database, maintainer scripts' results, alternatives,
// users and groups, diversions), computed as the difference between the base with the
// payloads applied and the built root. The image's tree is the same as with one packages
// layer.

// DefaultMaxLayers is the most layers an image gets: overlayfs stacks about 128 lower
// directories and Docker refuses more than about 125.
const DefaultMaxLayers = 100

// payloadLayer is one package's payload layer, cached by its .deb.
type payloadLayer struct {
	pkg    pkgmgr.Package
	path   string
	info   debfile.LayerInfo
	source string // built, local cache, registry cache (REPO)
	key    string // its cache entry (payload-<.deb digest>-<params>)
}

// Grained are the figures of package-grained layers.
type Grained struct {
	Layers    []PayloadLayer `json:"layers"` // the payloads with layers of their own
	OwnLayers int            `json:"own_layers"`
	Bundled   int            `json:"bundled"`
	NoArchive []string       `json:"no_archive,omitempty"` // installed packages without a package file: in the configuration layer
	// Downloaded counts the package files fetched again for the payloads: the build came from
	// a cache without them (a registry cache, a pruned archive store).
	Downloaded  int   `json:"downloaded,omitempty"`
	ConfigBytes int64 `json:"config_bytes"`
	// Record is the install set's grained entry in the registry cache: taken from it (no
	// install ran) or stored after this build (grained_regcache.go).
	Record string `json:"record,omitempty"`
}

// PayloadLayer is a package payload's own layer.
type PayloadLayer struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	DiffID  string `json:"diff_id"`
	Source  string `json:"source,omitempty"` // built, local cache, registry cache (REPO)
}

// grain replaces the single packages layer by payload layers, a bundle and the configuration
// layer. r.oldDir is the base with the packages layer applied (what the build made).
func (r *run) grain(ctx context.Context, archiveDir string, installed []pkgmgr.Package, baseDB *pkgmgr.DB) error {
	g := &Grained{}
	r.report.Packages.Grained = g
	archives, release, err := builder.HoldArchives(archiveDir)
	if err != nil {
		return err
	}
	defer release()
	payloads, err := r.payloads(ctx, baseDB.Manager, archives, newPackages(installed, baseDB), g)
	if err != nil {
		return err
	}
	budget, err := r.ownBudget()
	if err != nil {
		return err
	}
	own, bundled := splitOwn(payloads, budget, r.opts.OwnPackages)
	var applied, ids []string
	for _, p := range own {
		applied, ids = append(applied, p.path), append(ids, p.info.DiffID)
	}
	var bundle grainedBundle
	if len(bundled) > 0 {
		// The bundle is named by its payloads' diffIDs, so the cached base+payloads root is
		// found again by another conversion, whose bundle is in its own work directory.
		bundle = grainedBundle{path: filepath.Join(r.work, "packages-bundle.layer.tar"), packages: len(bundled), source: SourceBuilt, id: "bundle"}
		for _, p := range bundled {
			bundle.id += " " + p.info.DiffID
		}
		if bundle.diffID, bundle.size, err = writeBundle(bundle.path, bundled); err != nil {
			return err
		}
		applied, ids = append(applied, bundle.path), append(ids, bundle.id)
	}
	cfg, err := r.configLayer(ctx, applied, ids)
	if err != nil {
		return err
	}
	r.queueGrained(ctx, own, bundled, bundle, cfg, g)
	r.addGrainedLayers(g, own, bundle, cfg, "")
	return nil
}

// completeArchives downloads the package files the build's archive directory lacks for the
// payloads (builder.FetchArchives): a build taken from a cache says what it installed, but its
// package files may never have been here (a layer from a registry cache) or may have been
// pruned. It returns how many it fetched; what cannot be fetched is left to the configuration
// layer (NoArchive), with a warning.
func (r *run) completeArchives(ctx context.Context, in builder.Input, opts builder.Options, res *builder.Result, baseDB *pkgmgr.DB) int {
	if res.Archives == "" {
		return 0
	}
	var lack []pkgmgr.Package
	for _, p := range newPackages(res.Installed, baseDB) {
		if archiveFile(baseDB.Manager, res.Archives, p) == "" {
			lack = append(lack, p)
		}
	}
	if len(lack) == 0 {
		return 0
	}
	r.opts.Logf("the packages layer came from the cache without %d of its package files: downloading them", len(lack))
	if err := builder.FetchArchives(ctx, in, opts); err != nil {
		r.opts.Warnf("warning: downloading package files for the payload layers: %v", err)
	}
	fetched := 0
	for _, p := range lack {
		if archiveFile(baseDB.Manager, res.Archives, p) != "" {
			fetched++
		}
	}
	return fetched
}

// grainedBundle is the bundle layer of the payloads without layers of their own.
type grainedBundle struct {
	path     string
	id       string // "bundle" and the payloads' diffIDs
	diffID   string
	size     int64
	packages int
	source   string
}

// addGrainedLayers adds the payloads' own layers, the bundle (when there is one) and the
// configuration layer to the image; cfgSource says where the configuration layer came from
// ("" when built here).
func (r *run) addGrainedLayers(g *Grained, own []payloadLayer, bundle grainedBundle, cfg layerResult, cfgSource string) {
	for _, p := range own {
		lf := image.LayerFile{Path: p.path, Comment: fmt.Sprintf("vm2image: package %s %s %s", p.pkg.Name, p.pkg.Version, p.pkg.Arch)}
		// A known diffID lets assembly take the compressed blob from the image cache: a payload
		// is compressed once, whatever image it goes into.
		if h, err := v1.NewHash(p.info.DiffID); err == nil {
			lf.DiffID = h
		}
		r.layers, r.roles = append(r.layers, lf), append(r.roles, "package")
		g.Layers = append(g.Layers, PayloadLayer{Name: p.pkg.Name, Version: p.pkg.Version, Arch: p.pkg.Arch, DiffID: p.info.DiffID, Source: p.source})
		r.noteSource(p.info.DiffID, p.source)
	}
	g.OwnLayers, g.Bundled = len(own), bundle.packages
	if bundle.path != "" {
		lf := image.LayerFile{Path: bundle.path, Comment: fmt.Sprintf("vm2image: %d packages bundled", bundle.packages)}
		if bundle.source != SourceBuilt {
			lf.DiffID, _ = v1.NewHash(bundle.diffID) // its blob came with it
		}
		r.layers, r.roles = append(r.layers, lf), append(r.roles, "packages-bundle")
		r.noteSource(bundle.diffID, bundle.source)
	}
	g.ConfigBytes = cfg.size
	r.scanSecrets(cfg.path, "packages-config")
	lf := image.LayerFile{Path: cfg.path, Comment: "vm2image: packages configuration"}
	if cfgSource != "" {
		lf.DiffID, _ = v1.NewHash(cfg.diffID)
		r.noteSource(cfg.diffID, cfgSource)
	}
	r.layers, r.roles = append(r.layers, lf), append(r.roles, "packages-config")
}

// newPackages are the installed packages the base lacks (same name, version, architecture).
func newPackages(installed []pkgmgr.Package, base *pkgmgr.DB) []pkgmgr.Package {
	have := map[[3]string]bool{}
	for _, p := range base.Packages {
		have[[3]string{p.Name, p.Version, p.Arch}] = true
	}
	var out []pkgmgr.Package
	for _, p := range installed {
		if !have[[3]string{p.Name, p.Version, p.Arch}] {
			out = append(out, p)
		}
	}
	return out
}

// debName is apt's file name for a package's archive.
func debName(p pkgmgr.Package) string {
	return p.Name + "_" + strings.ReplaceAll(p.Version, ":", "%3a") + "_" + p.Arch + ".deb"
}

// payloads returns the payload layer of every package whose package file (of manager m) the
// archive holds, from the cache (keyed by the file's digest and the excludes) or made now.
func (r *run) payloads(ctx context.Context, m pkgmgr.Manager, archives string, pkgs []pkgmgr.Package, g *Grained) ([]payloadLayer, error) {
	d, err := r.cacheRoot().Dir(cache.Layers, nil, r.opts.Notef)
	if err != nil {
		return nil, err
	}
	links := baseDirLinks(r.baseDir)
	eh := payloadParams(r.excludes(), links)
	var out []payloadLayer
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The layer is made from the very bytes hashed for its key: one open file.
		f, sum, err := openDigest(archiveFile(m, archives, p))
		if err != nil {
			g.NoArchive = append(g.NoArchive, p.Name+"="+p.Version)
			continue
		}
		key := payloadKey(m, sum, hex.EncodeToString(eh[:]))
		source := SourceLocalCache
		dir, l, err := d.Get(ctx, key, func(ctx context.Context, dir string) (err error) {
			source, err = r.fillPayload(ctx, key, dir, func() error { return writePayload(f, m, p, r.excludes(), links, dir) },
				func() (debfile.LayerInfo, error) { return payloadInfo(f, m, p, r.excludes(), links) })
			return err
		})
		f.Close()
		if err != nil {
			r.opts.Warnf("warning: package %s %s: %v; its files go into the configuration layer", p.Name, p.Version, err)
			g.NoArchive = append(g.NoArchive, p.Name+"="+p.Version)
			continue
		}
		r.cleanup = append(r.cleanup, func() error { l.Release(); return nil })
		info, _, err := readLayerInfo(dir)
		if err != nil {
			return nil, fmt.Errorf("reading the payload layer of %s: %w", p.Name, err)
		}
		out = append(out, payloadLayer{pkg: p, path: filepath.Join(dir, "layer.tar"), info: info, source: source, key: key})
	}
	return out, nil
}

// readLayerInfo reads a payload cache entry's record (layer.json): decoded, and as written.
func readLayerInfo(dir string) (debfile.LayerInfo, []byte, error) {
	var info debfile.LayerInfo
	b, err := os.ReadFile(filepath.Join(dir, "layer.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	return info, b, err
}

// writePayload makes a cache entry: the payload layer of the package file, checked to be the
// package it is named for.
func writePayload(f *os.File, m pkgmgr.Manager, want pkgmgr.Package, excludes []string, links map[string]string, dir string) error {
	p, err := openPayload(f, m, want)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(dir, "layer.tar"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	info, err := p.WriteLayer(bw, excludes, links)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	b, _ := json.Marshal(info)
	return os.WriteFile(filepath.Join(dir, "layer.json"), b, 0o600)
}

// payloadInfo is what writePayload would record of the .deb's payload layer (its diffID, size
// and entries), computed without writing the layer: what a layer from elsewhere must be.
func payloadInfo(f *os.File, m pkgmgr.Manager, want pkgmgr.Package, excludes []string, links map[string]string) (debfile.LayerInfo, error) {
	p, err := openPayload(f, m, want)
	if err != nil {
		return debfile.LayerInfo{}, err
	}
	return p.WriteLayer(io.Discard, excludes, links)
}

// openDigest opens a regular file and hashes it; the file is left open for the caller.
func openDigest(path string) (*os.File, string, error) {
	if path == "" {
		return nil, "", os.ErrNotExist
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	h := sha256.New()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, "", fmt.Errorf("%s: not a regular file", path)
	}
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, "", err
	}
	return f, hex.EncodeToString(h.Sum(nil)), nil
}

// splitOwn picks the payloads with layers of their own: those named in chosen (a fleet's plan,
// "name version arch"), else the largest, within budget layers (one kept for the bundle); the
// rest are bundled. Both lists are in a stable order (by name).
func splitOwn(ps []payloadLayer, budget int, chosen map[string]bool) (own, bundle []payloadLayer) {
	budget-- // the bundle's
	order := slices.Clone(ps)
	slices.SortStableFunc(order, func(a, b payloadLayer) int {
		ca, cb := chosen[ownKey(a.pkg)], chosen[ownKey(b.pkg)]
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(b.info.Size, a.info.Size); c != 0 {
			return c
		}
		return cmp.Compare(a.pkg.Name, b.pkg.Name)
	})
	for _, p := range order {
		if len(own) < budget && (chosen == nil || chosen[ownKey(p.pkg)]) {
			own = append(own, p)
		} else {
			bundle = append(bundle, p)
		}
	}
	byName := func(a, b payloadLayer) int { return cmp.Compare(a.pkg.Name+" "+a.pkg.Arch, b.pkg.Name+" "+b.pkg.Arch) }
	slices.SortFunc(own, byName)
	slices.SortFunc(bundle, byName)
	return own, bundle
}

// ownKey names a package in Options.OwnPackages.
func ownKey(p pkgmgr.Package) string { return p.Name + " " + p.Version + " " + p.Arch }

// writeBundle concatenates payload layers into one layer (a later entry of the same name wins,
// as the layers applied in turn would) and returns its diffID and size.
func writeBundle(path string, ps []payloadLayer) (string, int64, error) {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	h := &hashCounter{h: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(out, h), 1<<20)
	err = concatLayers(bw, ps)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return h.diffID(), h.n, err
}

// hashCounter hashes and counts what is written through it.
type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *hashCounter) diffID() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }

// layerResult is a written layer.
type layerResult struct {
	path   string
	size   int64
	diffID string
}

// configLayer is the difference between the base with the payload layers applied and the
// built root (r.oldDir). ids name the layers' contents (diffIDs; the bundle by its payloads'),
// so the cached base+payloads root is found again by another conversion, whose bundle is in its
// own work directory.
func (r *run) configLayer(ctx context.Context, payloadPaths, ids []string) (layerResult, error) {
	withPayloads, _, err := r.baseWithLayers(ctx, "payloads-", payloadPaths, ids)
	if err != nil {
		return layerResult{}, err
	}
	old, err := source.OpenDir(withPayloads, "base+payloads")
	if err != nil {
		return layerResult{}, err
	}
	built, err := source.OpenDir(r.oldDir, "base+packages")
	if err != nil {
		return layerResult{}, err
	}
	res, err := diff.Trees(ctx, old, built, diff.Options{Strategy: diff.Checksum, Excludes: r.excludes()})
	if err != nil {
		return layerResult{}, fmt.Errorf("comparing base+payloads with the built root: %w", err)
	}
	path := filepath.Join(r.work, "packages-config.layer.tar")
	f, err := os.Create(path)
	if err != nil {
		return layerResult{}, err
	}
	defer f.Close()
	hc := &hashCounter{h: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(f, hc), 1<<20)
	_, err = layer.Write(ctx, bw, res, built, layer.Options{})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return layerResult{}, fmt.Errorf("writing the packages configuration layer: %w", err)
	}
	return layerResult{path: path, size: hc.n, diffID: hc.diffID()}, nil
}

// baseWithLayers is the cached tree of the base with the layer files paths applied in turn,
// keyed by prefix, the base and ids (the layers' contents: diffIDs), and that key.
func (r *run) baseWithLayers(ctx context.Context, prefix string, paths, ids []string) (string, string, error) {
	h := sha256.New()
	for _, id := range ids {
		fmt.Fprintln(h, id)
	}
	key := prefix + r.base.Digest.Hex[:16] + "-" + hex.EncodeToString(h.Sum(nil))[:32]
	dir, err := r.cachedRoot(ctx, key, func(ctx context.Context, dir string) error {
		if err := copyTree(ctx, r.baseDir, dir); err != nil {
			return err
		}
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			err = image.ApplyLayer(ctx, dir, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("applying %s: %w", filepath.Base(p), err)
			}
		}
		return nil
	})
	return dir, key, err
}

// baseDirLinks finds the base's directory symlinks one and two levels down ("bin" -> "usr/bin",
// "var/run" -> "run"), resolved inside the base root (an untrusted tree: os.Root keeps every
// lookup in it), which dpkg installs through.
func baseDirLinks(base string) map[string]string {
	links := map[string]string{}
	root, err := os.OpenRoot(base)
	if err != nil {
		return links
	}
	defer root.Close()
	var scan func(dir string, depth int)
	scan = func(dir string, depth int) {
		f, err := root.Open(dir)
		if err != nil {
			return
		}
		des, _ := f.ReadDir(-1)
		f.Close()
		for _, de := range des {
			rel := path.Join(dir, de.Name())
			if de.IsDir() && depth < 2 {
				scan(rel, depth+1)
				continue
			}
			if de.Type()&fs.ModeSymlink == 0 {
				continue
			}
			target, err := root.Readlink(rel)
			if err != nil {
				continue
			}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir("/"+rel), target)
			}
			target = strings.TrimPrefix(path.Clean("/"+target), "/")
			if target == "" || target == rel {
				continue
			}
			if fi, err := root.Stat(target); err == nil && fi.IsDir() {
				links[rel] = target
			}
		}
	}
	scan(".", 1)
	return links
}

// payloadParams is the digest of what a payload layer depends on beside its .deb: the excludes
// and the base's directory links. Links are named by the base image (any byte but '/' and NUL),
// so every string is written with its length before it: no other set of links or excludes
// reads the same.
func payloadParams(excludes []string, links map[string]string) [32]byte {
	h := sha256.New()
	put := func(s string) { fmt.Fprintf(h, "%d:%s", len(s), s) }
	// v2: each path once in a payload (v1 layers could hold a directory twice).
	fmt.Fprintf(h, "payload v2\nexcludes %d\n", len(excludes))
	for _, e := range excludes {
		put(e)
	}
	keys := slices.Sorted(maps.Keys(links))
	fmt.Fprintf(h, "links %d\n", len(keys))
	for _, k := range keys {
		put(k)
		put(links[k])
	}
	return [32]byte(h.Sum(nil))
}
