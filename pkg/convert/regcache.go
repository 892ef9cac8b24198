package convert

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	pathpkg "path"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/vm2image/vm2image/pkg/builder"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/debfile"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/regcache"
)

// Where a layer came from (LayerSizes.Source, PayloadLayer.Source).
const (
	SourceBuilt      = "built"
	SourceLocalCache = "local cache"
	SourceBase       = "base"
	// a layer from the registry cache says "registry cache (REGISTRY/REPO)"
)

// registrySource is the Source of a layer taken from the registry cache repo.
func registrySource(repo string) string { return "registry cache (" + repo + ")" }

// RegistryCache are the figures of the registry cache (Options.CacheRepo).
type RegistryCache struct {
	Repo    string   `json:"repo"`
	Hits    int      `json:"hits"`
	Misses  int      `json:"misses"`
	Pushed  int      `json:"pushed"`            // entries stored after the build
	Refused []string `json:"refused,omitempty"` // entries that were not what they claimed, built instead
	Errors  []string `json:"errors,omitempty"`  // lookups or pushes that failed (the layer was built)
}

// regCache is a conversion's use of the registry cache: the layers built here, to be stored
// there once the image has their compressed blobs, and where every layer came from.
type regCache struct {
	c       *regcache.Cache
	report  *RegistryCache
	pending []pendingEntry
	sources map[string]string // diffID -> where the layer came from
	// packagesKey is the key of the single packages layer taken from the registry cache.
	packagesKey string
	// grainedKey is the key of the grained entry looked up and missed: stored after the build
	// (grained_regcache.go).
	grainedKey string
}

type pendingEntry struct {
	key    string
	diffID string
	meta   json.RawMessage
}

// openRegCache opens Options.CacheRepo, once; nil without one.
func (r *run) openRegCache(ctx context.Context) (*regCache, error) {
	if r.opts.CacheRepo == "" {
		return nil, nil
	}
	if r.rc != nil {
		return r.rc, nil
	}
	r.rc = &regCache{report: &RegistryCache{Repo: r.opts.CacheRepo}, sources: map[string]string{}}
	r.report.RegistryCache = r.rc.report
	c, err := regcache.Open(ctx, r.opts.CacheRepo, r.opts.Insecure)
	if err != nil {
		// A cache that cannot be reached is no reason to fail: every layer is built.
		msg := printable(err.Error()) // the registry's answer, maybe
		r.rc.report.Errors = append(r.rc.report.Errors, msg)
		r.opts.Warnf("warning: registry cache: %s; building every layer here", msg)
		return r.rc, nil
	}
	r.rc.c = c
	r.rc.report.Repo = c.Repo()
	return r.rc, nil
}

func (r *run) compressionName() string {
	if r.opts.Compression == "" {
		return "gzip"
	}
	return string(r.opts.Compression)
}

// fillPayload fills a payload layer's local cache entry dir (a miss): from the registry cache
// when it holds the layer of key and that layer is the one local (the .deb's layer, not
// written) says, else by building it. It says where the layer came from.
func (r *run) fillPayload(ctx context.Context, key, dir string, build func() error, local func() (debfile.LayerInfo, error)) (string, error) {
	rc, err := r.openRegCache(ctx)
	if err != nil {
		return "", err
	}
	if rc == nil || rc.c == nil {
		return SourceBuilt, build()
	}
	if r.fromRegistry(ctx, rc, key, dir, local) {
		return registrySource(rc.c.Repo()), nil
	}
	if err := build(); err != nil {
		return "", err
	}
	if info, b, err := readLayerInfo(dir); err == nil {
		rc.pending = append(rc.pending, pendingEntry{key: key, diffID: info.DiffID, meta: b})
	}
	return SourceBuilt, nil
}

// fromRegistry takes key's payload layer from the registry cache into dir: layer.tar checked
// against the entry's digest and diffID while it downloads, and layer.json. The entry's layer
// must be the one the local .deb makes (local): whoever can push to the cache repository could
// otherwise add files under the excludes, which no diff and no verify looks at. Any failure is
// reported, dir is emptied and the caller builds the layer.
func (r *run) fromRegistry(ctx context.Context, rc *regCache, key, dir string, local func() (debfile.LayerInfo, error)) bool {
	e, err := rc.c.Lookup(ctx, key, r.compressionName())
	if err == nil && e == nil {
		rc.report.Misses++
		return false
	}
	if err == nil {
		err = r.fetchPayload(ctx, rc, e, dir, local)
	}
	if err != nil {
		_ = os.Remove(filepath.Join(dir, "layer.tar"))
		_ = os.Remove(filepath.Join(dir, "layer.json"))
		rc.refuse(r, key, err)
		return false
	}
	rc.report.Hits++
	return true
}

// entryLayerInfo decodes a payload entry's meta (its layer.json) strictly; it must agree with
// the entry.
func entryLayerInfo(e *regcache.Entry) (debfile.LayerInfo, error) {
	dec := json.NewDecoder(bytes.NewReader(e.Meta))
	dec.DisallowUnknownFields()
	var info debfile.LayerInfo
	if err := dec.Decode(&info); err != nil {
		return info, fmt.Errorf("%w: layer.json: %v", regcache.ErrEntry, err)
	}
	if info.DiffID != e.DiffID || info.Size != e.UncompressedSize || info.Entries < 0 || info.Dropped < 0 {
		return info, fmt.Errorf("%w: layer.json says %s (%d bytes), the entry %s (%d bytes)", regcache.ErrEntry, info.DiffID, info.Size, e.DiffID, e.UncompressedSize)
	}
	return info, nil
}

// fetchPayload checks e's meta (a payload's layer.json) and downloads its layer into dir.
func (r *run) fetchPayload(ctx context.Context, rc *regCache, e *regcache.Entry, dir string, local func() (debfile.LayerInfo, error)) error {
	if _, err := entryLayerInfo(e); err != nil {
		return err
	}
	want, err := local()
	if err != nil {
		return fmt.Errorf("making the package's layer to compare: %w", err)
	}
	if want.DiffID != e.DiffID || want.Size != e.UncompressedSize {
		return fmt.Errorf("%w: the entry's layer is %s (%d bytes), the package's %s (%d bytes)", regcache.ErrEntry, e.DiffID, e.UncompressedSize, want.DiffID, want.Size)
	}
	if err := r.fetchInto(ctx, rc, e, filepath.Join(dir, "layer.tar")); err != nil {
		return err
	}
	b, _ := json.Marshal(want)
	return os.WriteFile(filepath.Join(dir, "layer.json"), b, 0o600)
}

// noteSource records where the layer of diffID came from, for the report.
func (r *run) noteSource(diffID, source string) {
	if r.layerSources == nil {
		r.layerSources = map[string]string{}
	}
	r.layerSources[diffID] = source
}

// pushToRegCache stores the layers built here in the registry cache, now that the image holds
// their compressed blobs; pushed is the repository the image went to, from which the registry
// mounts them. A failure is a warning: the image is written.
func (r *run) pushToRegCache(ctx context.Context, img v1.Image, pushed string) {
	rc := r.rc
	if rc == nil || rc.c == nil || len(rc.pending) == 0 {
		return
	}
	var from *name.Repository
	if pushed != "" {
		if ref, err := name.ParseReference(pushed); err == nil {
			repo := ref.Context()
			from = &repo
		}
	}
	for _, p := range rc.pending {
		h, err := v1.NewHash(p.diffID)
		if err != nil {
			continue
		}
		l, err := img.LayerByDiffID(h)
		if err != nil {
			continue // a payload in the bundle: the image has no blob of it alone
		}
		err = rc.c.Put(ctx, p.key, r.compressionName(), l, p.meta, from)
		if err != nil {
			msg := printable(err.Error()) // the registry's answer, maybe
			rc.report.Errors = append(rc.report.Errors, fmt.Sprintf("storing %s: %s", p.key, msg))
			r.opts.Warnf("warning: registry cache %s: storing layer %s: %s", rc.c.Repo(), p.diffID, msg)
			continue
		}
		rc.report.Pushed++
	}
}

// packagesFromRegistry brings the single packages layer of in into the local layer cache
// (layersDir) from the registry cache when the local cache lacks it, so that the build finds it
// there and installs nothing. Grained layers need the install's .deb files: no lookup.
func (r *run) packagesFromRegistry(ctx context.Context, in builder.Input, layersDir string) error {
	if r.opts.PackageLayers == PackageLayersGrained || r.opts.CacheRepo == "" {
		return nil
	}
	rc, err := r.openRegCache(ctx)
	if err != nil || rc.c == nil {
		return err
	}
	key := builder.EntryKey(in)
	imported := false
	e, err := rc.c.Lookup(ctx, key, r.compressionName())
	if err == nil && e != nil {
		imported, err = builder.Import(ctx, layersDir, key, builder.Imported{Meta: e.Meta, DiffID: e.DiffID, Size: e.UncompressedSize, BaseDigest: in.BaseDigest},
			func(ctx context.Context, layerPath string) error {
				if err := r.fetchInto(ctx, rc, e, layerPath); err != nil {
					return err
				}
				return outsideExcludes(layerPath, r.excludes())
			})
		if errors.Is(err, builder.ErrImport) {
			err = fmt.Errorf("%w: %w", regcache.ErrEntry, err)
		}
	}
	switch {
	case err != nil:
		rc.refuse(r, key, err)
	case e == nil:
		rc.report.Misses++
	default:
		rc.report.Hits++
		if imported {
			rc.packagesKey = key
		}
	}
	return ctx.Err()
}

// fetchInto downloads e's layer to path (a new file), checked.
func (r *run) fetchInto(ctx context.Context, rc *regCache, e *regcache.Entry, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = rc.c.Fetch(ctx, e, r.cacheRoot().Path(cache.Images), f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// refuse records a lookup that failed or an entry that was not what it claimed.
func (rc *regCache) refuse(r *run, key string, err error) {
	// The entry's own strings (digests, media types, a record's fields) are the registry's: no
	// control character of theirs reaches the operator's terminal.
	msg := printable(fmt.Sprintf("%s: %v", regcache.Tag(key, r.compressionName()), err))
	rc.report.Misses++
	if errors.Is(err, regcache.ErrEntry) {
		rc.report.Refused = append(rc.report.Refused, msg)
		r.opts.Warnf("warning: registry cache %s: refusing entry %s; building the layer instead", rc.c.Repo(), msg)
		return
	}
	rc.report.Errors = append(rc.report.Errors, msg)
	r.opts.Warnf("warning: registry cache %s: %s; building the layer instead", rc.c.Repo(), msg)
}

// notePackagesSource records where the single packages layer came from, and queues a layer
// built here for the registry cache.
func (r *run) notePackagesSource(res *builder.Result, layersDir string) {
	rc := r.rc
	switch {
	case rc != nil && rc.packagesKey != "" && rc.packagesKey == res.CacheKey:
		r.noteSource(res.LayerDiffID, registrySource(rc.c.Repo()))
	case res.CacheHit:
		r.noteSource(res.LayerDiffID, SourceLocalCache)
	case rc != nil && rc.c != nil && r.opts.PackageLayers != PackageLayersGrained && filepath.Dir(res.LayerPath) == filepath.Join(layersDir, res.CacheKey):
		if meta, err := builder.EntryMeta(layersDir, res.CacheKey); err == nil {
			rc.pending = append(rc.pending, pendingEntry{key: res.CacheKey, diffID: res.LayerDiffID, meta: meta})
		}
	}
}

// layerSource says where an image layer came from: the base, a cache, or built here.
func (r *run) layerSource(base bool, l v1.Layer) string {
	if base {
		return SourceBase
	}
	if d, err := l.DiffID(); err == nil {
		if s, ok := r.layerSources[d.String()]; ok {
			return s
		}
	}
	return SourceBuilt
}

// mountFrom are the repositories a push may mount layers from: the registry cache.
func (r *run) mountFrom() []string {
	if r.opts.CacheRepo == "" {
		return nil
	}
	return []string{r.opts.CacheRepo}
}

// printable makes s safe to print on a terminal: invalid UTF-8 and control characters (escape
// sequences, carriage returns) become U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || unicode.IsPrint(r) {
			return r
		}
		return '\uFFFD'
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// outsideExcludes checks that no entry of the layer tar at path lies under the excludes, by
// its name or through a symlink of the same layer: the VM's diff and verify never look there,
// so such a file from the registry cache would reach the image unseen.
func outsideExcludes(path string, excludes []string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 1<<20))
	links := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: reading the layer: %v", regcache.ErrEntry, err)
		}
		name := strings.Trim(pathpkg.Clean("/"+h.Name), "/")
		for dir := pathpkg.Dir(name); dir != "." && dir != "/"; dir = pathpkg.Dir(dir) {
			if links[dir] {
				return fmt.Errorf("%w: the layer's %q lies under its own symlink %q", regcache.ErrEntry, name, dir)
			}
		}
		for _, pat := range excludes {
			if fswalk.Match(pat, name) {
				return fmt.Errorf("%w: the layer's %q lies under the exclude %q", regcache.ErrEntry, name, pat)
			}
		}
		if h.Typeflag == tar.TypeSymlink {
			links[name] = true
		}
	}
}
