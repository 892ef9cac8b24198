package convert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vm2image/vm2image/pkg/builder"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/debfile"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/regcache"
)

// Package-grained layers in the registry cache. The payload layers are entries of their own
// (keyed by their .deb), but the configuration layer is what running the installer made: its
// bytes differ from one build to the next (keys, timestamps, compiled bytecode), so a worker
// whose local cache lost the built root would install again and upload a new configuration
// layer. The install set's grained record is therefore an entry too, keyed like the single
// packages layer (base, manager, install set, plan) plus what decides the payloads and the
// split (excludes, the base's directory links, the layer budget, the fleet's plan); its layer
// is the configuration layer and its record lists the payloads and the bundle. A conversion
// that finds it installs nothing: it takes the payloads from its local cache or the registry
// cache, the bundle and the configuration layer from the registry cache, and builds the
// base+packages tree from them.
//
// The registry is untrusted. The record is decoded strictly and must be of the key looked up;
// every payload it names must be a package name, version and architecture (the installer may
// add packages the VM lacks), once, with the layer split this
// conversion would make of them; every layer must have the digest and diffID the record gives
// (checked while it downloads) and put nothing under the excludes (the VM diff and verify never
// look there); anything the layers place elsewhere that the VM does not hold is undone by the
// VM diff and seen by verify. A payload taken without its .deb is kept in the work directory,
// not in the local cache, where it would pass for one made from the .deb.

// grainedRecordVersion is the format of grainedRecord.
const grainedRecordVersion = 1

// maxGrainedPayloads bounds the payloads of a record (the VM's packages are fewer).
const maxGrainedPayloads = 1 << 16

// grainedRecord is the grained entry's record; its layer is the configuration layer.
type grainedRecord struct {
	Version        int              `json:"version"`
	Key            string           `json:"key"`
	Payloads       []grainedPayload `json:"payloads"` // by name: own ones and bundled ones
	BundleDiffID   string           `json:"bundle_diff_id,omitempty"`
	BundleSize     int64            `json:"bundle_size,omitempty"`
	ConfigDiffID   string           `json:"config_diff_id"`
	ConfigSize     int64            `json:"config_size"`
	NoArchive      []string         `json:"no_archive,omitempty"`
	Installed      int              `json:"installed"`
	LayerBytes     int64            `json:"layer_bytes"`
	Missing        []string         `json:"missing,omitempty"`
	VersionDiffers []pkgmgr.Change  `json:"version_differs,omitempty"`
	Errors         []string         `json:"errors,omitempty"`
	Installer      string           `json:"installer,omitempty"`
}

// grainedPayload is a payload of the record.
type grainedPayload struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Arch    string            `json:"arch"`
	Key     string            `json:"key"` // its payload entry
	Own     bool              `json:"own"` // a layer of its own, else in the bundle
	Layer   debfile.LayerInfo `json:"layer"`
}

// ownBudget is how many payload layers (the bundle's included) an image on this base gets.
func (r *run) ownBudget() (int, error) {
	ls, err := r.base.Image.Layers()
	if err != nil {
		return 0, err
	}
	return r.opts.MaxLayers - len(ls) - 4, nil
}

// grainedKey is the grained entry's key for the install set's builder key.
func (r *run) grainedKey(builderKey string) (string, error) {
	budget, err := r.ownBudget()
	if err != nil {
		return "", err
	}
	eh := payloadParams(r.excludes(), baseDirLinks(r.baseDir))
	h := sha256.New()
	fmt.Fprintf(h, "grained v%d\n%d:%s\n%x\nbudget %d\n", grainedRecordVersion, len(builderKey), builderKey, eh, budget)
	if r.opts.OwnPackages == nil {
		fmt.Fprintln(h, "plan none")
	} else {
		own := slices.Sorted(maps.Keys(r.opts.OwnPackages))
		fmt.Fprintf(h, "plan %d\n", len(own))
		for _, k := range own {
			fmt.Fprintf(h, "%d:%s %t\n", len(k), k, r.opts.OwnPackages[k])
		}
	}
	return "grained-" + hex.EncodeToString(h.Sum(nil))[:48], nil
}

// bundleKey is the registry cache key of the bundle of payloads named by id ("bundle" and
// their diffIDs, as grain names it).
func bundleKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return "bundle-" + hex.EncodeToString(h[:])[:48]
}

// grainedFromRegistry looks for the install set's grained entry. take is set when the local
// cache lacks the install set's build: on a hit the image gets its package layers from the
// entry and nothing is installed (true). On a miss the key is kept and the record is stored once
// the image is written (also when the build came from the local cache: a worker stores what it
// holds for the others). An entry that is refused, or a lookup that fails, is a warning and the
// packages are installed (or taken from the local cache).
func (r *run) grainedFromRegistry(ctx context.Context, in builder.Input, take bool) (bool, error) {
	if r.opts.CacheRepo == "" {
		return false, nil
	}
	rc, err := r.openRegCache(ctx)
	if err != nil || rc.c == nil {
		return false, err
	}
	key, err := r.grainedKey(builder.EntryKey(in))
	if err != nil {
		return false, err
	}
	rc.grainedKey = key
	e, err := rc.c.Lookup(ctx, key, r.compressionName())
	if err == nil && e == nil {
		rc.report.Misses++
		return false, nil
	}
	if err == nil && !take {
		rc.grainedKey = "" // the registry cache has it; the local build serves this image
		return false, nil
	}
	if err == nil {
		err = r.grainedHit(ctx, rc, key, e)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		rc.refuse(r, key, err)
		return false, nil
	}
	rc.report.Hits++
	rc.grainedKey = ""
	return true, nil
}

// grainedHit makes the package layers and the base+packages tree from the grained entry e.
func (r *run) grainedHit(ctx context.Context, rc *regCache, key string, e *regcache.Entry) (err error) {
	rec, err := r.decodeGrained(key, e)
	if err != nil {
		return err
	}
	var fetched []string // the work directory's layers, removed if the entry is refused
	defer func() {
		if err != nil {
			for _, p := range fetched {
				_ = os.Remove(p)
			}
		}
	}()
	fetch := func(e *regcache.Entry, name string) (string, error) {
		p := filepath.Join(r.work, name)
		fetched = append(fetched, p)
		if err := r.fetchInto(ctx, rc, e, p); err != nil {
			return "", err
		}
		return p, outsideExcludes(p, r.excludes())
	}
	d, err := r.cacheRoot().Dir(cache.Layers, nil, r.opts.Notef)
	if err != nil {
		return err
	}
	repoSource := registrySource(rc.c.Repo())
	var own []payloadLayer
	var bundled []string
	for i, gp := range rec.Payloads {
		if !gp.Own {
			bundled = append(bundled, gp.Layer.DiffID)
			continue
		}
		p := payloadLayer{pkg: pkgmgr.Package{Name: gp.Name, Version: gp.Version, Arch: gp.Arch}, info: gp.Layer, key: gp.Key}
		hit, l, err := d.Acquire(ctx, gp.Key)
		if err != nil {
			return err
		}
		if hit {
			r.cleanup = append(r.cleanup, func() error { l.Release(); return nil })
			info, _, err := readLayerInfo(filepath.Join(d.Path, gp.Key))
			if err != nil {
				return fmt.Errorf("reading the payload layer of %s: %w", gp.Name, err)
			}
			if info.DiffID != gp.Layer.DiffID || info.Size != gp.Layer.Size {
				return fmt.Errorf("%w: the record's payload of %s %s is %s, the one made here from its .deb %s", regcache.ErrEntry, gp.Name, gp.Version, gp.Layer.DiffID, info.DiffID)
			}
			p.path, p.source = filepath.Join(d.Path, gp.Key, "layer.tar"), SourceLocalCache
			own = append(own, p)
			continue
		}
		l.Release()
		pe, err := rc.c.Lookup(ctx, gp.Key, r.compressionName())
		if err == nil && pe == nil {
			err = fmt.Errorf("%w: the payload of %s %s is not in the cache", regcache.ErrEntry, gp.Name, gp.Version)
		}
		if err != nil {
			return err
		}
		if err := samePayload(pe, gp.Layer); err != nil {
			return fmt.Errorf("the payload of %s %s: %w", gp.Name, gp.Version, err)
		}
		if p.path, err = fetch(pe, fmt.Sprintf("payload-%d.layer.tar", i)); err != nil {
			return fmt.Errorf("the payload of %s %s: %w", gp.Name, gp.Version, err)
		}
		p.source = repoSource
		own = append(own, p)
	}
	bundlePath := ""
	if len(bundled) > 0 {
		id := "bundle " + strings.Join(bundled, " ")
		be, err := rc.c.Lookup(ctx, bundleKey(id), r.compressionName())
		if err == nil && be == nil {
			err = fmt.Errorf("%w: the bundle of %d packages is not in the cache", regcache.ErrEntry, len(bundled))
		}
		if err != nil {
			return err
		}
		if be.DiffID != rec.BundleDiffID || be.UncompressedSize != rec.BundleSize {
			return fmt.Errorf("%w: the bundle is %s, the record says %s", regcache.ErrEntry, be.DiffID, rec.BundleDiffID)
		}
		if bundlePath, err = fetch(be, "packages-bundle.layer.tar"); err != nil {
			return fmt.Errorf("the bundle: %w", err)
		}
	}
	cfgPath, err := fetch(e, "packages-config.layer.tar")
	if err != nil {
		return fmt.Errorf("the configuration layer: %w", err)
	}

	// The base+packages tree: the base with the layers applied in the image's order, cached
	// by their diffIDs (checked digests of what they hold).
	var paths, ids []string
	for _, p := range own {
		paths, ids = append(paths, p.path), append(ids, p.info.DiffID)
	}
	if bundlePath != "" {
		paths, ids = append(paths, bundlePath), append(ids, rec.BundleDiffID)
	}
	paths, ids = append(paths, cfgPath), append(ids, rec.ConfigDiffID)
	dir, rootKey, err := r.baseWithLayers(ctx, "grained-", paths, ids)
	if err != nil {
		return err
	}
	r.oldDir, r.oldKey = dir, rootKey

	p := r.report.Packages
	p.Installed, p.LayerBytes, p.CacheHit, p.CacheKey = rec.Installed, rec.LayerBytes, true, key
	p.Missing, p.Errors, p.Installer = printables(rec.Missing), printables(rec.Errors), printable(rec.Installer)
	for _, c := range rec.VersionDiffers {
		p.VersionDiffers = append(p.VersionDiffers, pkgmgr.Change{Name: printable(c.Name), Arch: printable(c.Arch), VMVersion: printable(c.VMVersion), BaseVersion: printable(c.BaseVersion)})
	}
	g := &Grained{NoArchive: printables(rec.NoArchive), Record: key}
	p.Grained = g
	bundle := grainedBundle{path: bundlePath, packages: len(bundled), diffID: rec.BundleDiffID, source: repoSource}
	r.addGrainedLayers(g, own, bundle, layerResult{path: cfgPath, size: rec.ConfigSize, diffID: rec.ConfigDiffID}, repoSource)
	return nil
}

// pkgIdentRE is a package name, version or architecture of dpkg, rpm or pacman.
var pkgIdentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._~:@^-]{0,255}$`)

// payloadKeyRE is a payload entry's key after its format's prefix (grained_archive.go:
// <package file digest>-<params>).
var payloadKeyRE = regexp.MustCompile(`^[0-9a-f]{32}-[0-9a-f]{12}$`)

// isPayloadKey says whether key is a payload key of the package format of m.
func isPayloadKey(m pkgmgr.Manager, key string) bool {
	rest, ok := strings.CutPrefix(key, payloadKeyPrefix(m))
	return ok && payloadKeyRE.MatchString(rest)
}

// decodeGrained decodes e's record strictly and checks it against this conversion: its key,
// its layers' digests, its packages (the VM's own) and its split (the one this conversion
// would make).
func (r *run) decodeGrained(key string, e *regcache.Entry) (*grainedRecord, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: grained record: %s", regcache.ErrEntry, fmt.Sprintf(format, a...))
	}
	dec := json.NewDecoder(bytes.NewReader(e.Meta))
	dec.DisallowUnknownFields()
	var rec grainedRecord
	if err := dec.Decode(&rec); err != nil {
		return nil, bad("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the record")
	}
	switch {
	case rec.Version != grainedRecordVersion:
		return nil, bad("format version %d, want %d", rec.Version, grainedRecordVersion)
	case rec.Key != key:
		return nil, bad("of key %q, not %q", rec.Key, key)
	case rec.ConfigDiffID != e.DiffID || rec.ConfigSize != e.UncompressedSize:
		return nil, bad("names configuration layer %s (%d bytes), the entry holds %s (%d bytes)", rec.ConfigDiffID, rec.ConfigSize, e.DiffID, e.UncompressedSize)
	case len(rec.Payloads) > maxGrainedPayloads:
		return nil, bad("%d payloads", len(rec.Payloads))
	case rec.Installed < 0 || rec.LayerBytes < 0 || rec.BundleSize < 0:
		return nil, bad("negative figures")
	}
	eh := payloadParams(r.excludes(), baseDirLinks(r.baseDir))
	suffix := "-" + hex.EncodeToString(eh[:])[:12]
	seen := map[string]bool{}
	var ps []payloadLayer
	bundled := 0
	for _, gp := range rec.Payloads {
		// The installer may add packages the VM lacks (the VM diff removes their files again),
		// so a payload need not be one of the VM's: its name, version and architecture must be
		// what package managers call them, no more (they go into the report and the layers'
		// history).
		switch {
		case !pkgIdentRE.MatchString(gp.Name) || !pkgIdentRE.MatchString(gp.Version) || !pkgIdentRE.MatchString(gp.Arch):
			return nil, bad("names %q, not a package name, version and architecture", printable(gp.Name+" "+gp.Version+" "+gp.Arch))
		case seen[gp.Name+" "+gp.Arch]:
			return nil, bad("names %q twice", printable(gp.Name))
		case !isPayloadKey(r.vmDB.Manager, gp.Key) || !strings.HasSuffix(gp.Key, suffix):
			return nil, bad("payload key %q is not one of this conversion's", printable(gp.Key))
		case !validDiffID(gp.Layer.DiffID) || gp.Layer.Size < 0 || gp.Layer.Entries < 0 || gp.Layer.Dropped < 0:
			return nil, bad("payload of %s: layer %q (%d bytes)", gp.Name, printable(gp.Layer.DiffID), gp.Layer.Size)
		}
		seen[gp.Name+" "+gp.Arch] = true
		if !gp.Own {
			bundled++
		}
		ps = append(ps, payloadLayer{pkg: pkgmgr.Package{Name: gp.Name, Version: gp.Version, Arch: gp.Arch}, info: gp.Layer})
	}
	// Each layer is read no further than its declared size; together they may hold no more than
	// one entry may (a record of 96 small entries each claiming the bound would otherwise have
	// the work directory take 96 times it).
	limit := r.rc.c.MaxBytes
	total := min(rec.BundleSize, limit+1) + min(rec.ConfigSize, limit+1)
	for _, gp := range rec.Payloads {
		if gp.Own {
			total += min(gp.Layer.Size, limit+1) // no overflow: at most 2^16 payloads
		}
	}
	if total > limit {
		return nil, bad("its layers claim over %d bytes together", limit)
	}
	if (bundled > 0) != validDiffID(rec.BundleDiffID) || (bundled == 0 && (rec.BundleDiffID != "" || rec.BundleSize != 0)) {
		return nil, bad("bundle %q for %d bundled payloads", printable(rec.BundleDiffID), bundled)
	}
	budget, err := r.ownBudget()
	if err != nil {
		return nil, err
	}
	own, _ := splitOwn(ps, budget, r.opts.OwnPackages)
	want := map[string]bool{}
	for _, p := range own {
		want[p.pkg.Name+" "+p.pkg.Arch] = true
	}
	for _, gp := range rec.Payloads {
		if gp.Own != want[gp.Name+" "+gp.Arch] {
			return nil, bad("%s has a layer of its own: %t; this conversion's plan: %t", gp.Name, gp.Own, !gp.Own)
		}
	}
	return &rec, nil
}

// samePayload checks a payload entry against the layer the record names.
func samePayload(e *regcache.Entry, want debfile.LayerInfo) error {
	if _, err := entryLayerInfo(e); err != nil {
		return err
	}
	if e.DiffID != want.DiffID || e.UncompressedSize != want.Size {
		return fmt.Errorf("%w: the entry holds %s (%d bytes), the record names %s (%d bytes)", regcache.ErrEntry, e.DiffID, e.UncompressedSize, want.DiffID, want.Size)
	}
	return nil
}

func validDiffID(s string) bool {
	h, err := v1.NewHash(s)
	return err == nil && h.Algorithm == "sha256"
}

func printables(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, printable(s))
	}
	return out
}

// queueGrained queues the grained entry (and its bundle's) for the registry cache when the
// cache lacked it, with the payloads this conversion took from its local cache that the
// registry cache lacks too (those built here are queued already).
func (r *run) queueGrained(ctx context.Context, own, bundled []payloadLayer, bundle grainedBundle, cfg layerResult, g *Grained) {
	rc := r.rc
	if rc == nil || rc.c == nil || rc.grainedKey == "" {
		return
	}
	for _, pl := range own {
		if pl.source != SourceLocalCache {
			continue
		}
		if e, err := rc.c.Lookup(ctx, pl.key, r.compressionName()); err == nil && e != nil {
			continue
		}
		info, err := json.Marshal(pl.info)
		if err == nil {
			rc.pending = append(rc.pending, pendingEntry{key: pl.key, diffID: pl.info.DiffID, meta: info})
		}
	}
	p := r.report.Packages
	rec := grainedRecord{Version: grainedRecordVersion, Key: rc.grainedKey, BundleDiffID: bundle.diffID, BundleSize: bundle.size,
		ConfigDiffID: cfg.diffID, ConfigSize: cfg.size, NoArchive: g.NoArchive, Installed: p.Installed, LayerBytes: p.LayerBytes,
		Missing: p.Missing, VersionDiffers: p.VersionDiffers, Errors: p.Errors, Installer: p.Installer}
	add := func(pl payloadLayer, own bool) {
		rec.Payloads = append(rec.Payloads, grainedPayload{Name: pl.pkg.Name, Version: pl.pkg.Version, Arch: pl.pkg.Arch,
			Key: pl.key, Own: own, Layer: pl.info})
	}
	for _, pl := range own {
		add(pl, true)
	}
	for _, pl := range bundled {
		add(pl, false)
	}
	slices.SortFunc(rec.Payloads, func(a, b grainedPayload) int { return strings.Compare(a.Name+" "+a.Arch, b.Name+" "+b.Arch) })
	if bundle.path != "" {
		info, _ := json.Marshal(debfile.LayerInfo{DiffID: bundle.diffID, Size: bundle.size})
		rc.pending = append(rc.pending, pendingEntry{key: bundleKey(bundle.id), diffID: bundle.diffID, meta: info})
	}
	meta, err := json.Marshal(rec)
	if err != nil {
		return
	}
	// Last: whoever finds the record finds its payloads and bundle stored before it.
	rc.pending = append(rc.pending, pendingEntry{key: rc.grainedKey, diffID: cfg.diffID, meta: meta})
	g.Record = rc.grainedKey
}
