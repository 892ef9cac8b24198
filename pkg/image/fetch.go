package image

import (
	"bufio"
	"compress/bzip2"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cavaliergopher/grab/v3"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// downloadAttempts bounds how often a broken download is resumed.
const downloadAttempts = 5

// errNoResume is returned when a server answers a range request with the whole file.
var errNoResume = errors.New("server ignored the resume range")

// fromURL downloads a root-filesystem tarball (gzip, zstd, bzip2 or uncompressed) and returns a
// one-layer image of it for opts.Platform. A "#sha256=HEX" fragment pins the tarball's digest.
func fromURL(ctx context.Context, rawURL string, opts ResolveOptions, st blobStore) (v1.Image, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parsing URL: %w", err)
	}
	var pinned v1.Hash
	if hexSum, ok := strings.CutPrefix(u.Fragment, "sha256="); ok {
		if pinned, err = v1.NewHash("sha256:" + hexSum); err != nil {
			return nil, fmt.Errorf("parsing pinned digest: %w", err)
		}
	}
	u.Fragment = ""
	file, sum, err := download(ctx, u.String(), pinned, opts)
	if err != nil {
		return nil, err
	}
	l, err := rootfsLayer(ctx, file, sum, st)
	if err != nil {
		return nil, err
	}
	cfg := v1.ConfigFile{
		Architecture: opts.Platform.Architecture,
		OS:           opts.Platform.OS,
		Variant:      opts.Platform.Variant,
		Config: v1.Config{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/sh"},
		},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{l.meta.DiffID}},
		History: []v1.History{{CreatedBy: "vm2image: rootfs " + u.String(), Comment: sum.String()}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return newStoredImage(raw, []*fileLayer{l}, types.DockerManifestSchema2)
}

// download fetches url into CACHE/downloads/sha256-HEX, resuming broken transfers, and returns
// the file and its digest. A URL fetched before is not fetched again.
func download(ctx context.Context, url string, pinned v1.Hash, opts ResolveOptions) (string, v1.Hash, error) {
	dir := filepath.Join(opts.CacheDir, "downloads")
	key := sha256.Sum256([]byte(url))
	marker := filepath.Join(dir, "url-"+hex.EncodeToString(key[:]))
	if b, err := os.ReadFile(marker); err == nil {
		if sum, err := v1.NewHash(strings.TrimSpace(string(b))); err == nil && (pinned.Hex == "" || pinned == sum) {
			file := filepath.Join(dir, "sha256-"+sum.Hex)
			if _, err := os.Stat(file); err == nil {
				return file, sum, nil
			}
		}
	}
	partial := marker + ".partial"
	if err := fetchWithResume(ctx, url, partial, opts.Progress); err != nil {
		return "", v1.Hash{}, fmt.Errorf("downloading %s: %w", url, err)
	}
	f, err := os.Open(partial)
	if err != nil {
		return "", v1.Hash{}, err
	}
	sum, _, err := v1.SHA256(bufio.NewReaderSize(f, 1<<20))
	f.Close()
	if err != nil {
		return "", v1.Hash{}, fmt.Errorf("hashing download: %w", err)
	}
	if pinned.Hex != "" && sum != pinned {
		os.Remove(partial)
		return "", v1.Hash{}, fmt.Errorf("downloading %s: got %s, want %s", url, sum, pinned)
	}
	file := filepath.Join(dir, "sha256-"+sum.Hex)
	if err := os.Rename(partial, file); err != nil {
		return "", v1.Hash{}, err
	}
	if err := writeFileAtomic(marker, []byte(sum.String()+"\n")); err != nil {
		return "", v1.Hash{}, err
	}
	return file, sum, nil
}

// fetchWithResume downloads url to dst with grab, resuming from what dst holds after a broken
// transfer, up to downloadAttempts times.
func fetchWithResume(ctx context.Context, url, dst string, progress func(done, total int64)) error {
	var err error
	for attempt := 1; attempt <= downloadAttempts; attempt++ {
		if err = fetchOnce(ctx, url, dst, progress); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var status grab.StatusCodeError
		if errors.As(err, &status) && status < 500 {
			return err
		}
		if errors.Is(err, errNoResume) || errors.Is(err, grab.ErrBadLength) {
			os.Remove(dst)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w (after %d attempts)", err, downloadAttempts)
}

func fetchOnce(ctx context.Context, url, dst string, progress func(done, total int64)) error {
	req, err := grab.NewRequest(dst, url)
	if err != nil {
		return err
	}
	req = req.WithContext(ctx)
	req.IgnoreRemoteTime = true
	req.BeforeCopy = func(r *grab.Response) error {
		if r.DidResume && r.HTTPResponse.StatusCode != http.StatusPartialContent {
			return errNoResume
		}
		return nil
	}
	resp := grab.NewClient().Do(req)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			progress(resp.BytesComplete(), resp.Size())
		case <-resp.Done:
			progress(resp.BytesComplete(), resp.Size())
			return resp.Err()
		}
	}
}

// rootfsLayer turns the downloaded tarball file (digest sum) into a layer in st: gzip and zstd
// tarballs are kept as they are, others are compressed with gzip. The result is remembered.
func rootfsLayer(ctx context.Context, file string, sum v1.Hash, st blobStore) (*fileLayer, error) {
	index := filepath.Join(st.dir, "sources", sum.Hex+".json")
	if b, err := os.ReadFile(index); err == nil {
		var m layerMeta
		if json.Unmarshal(b, &m) == nil {
			if l, ok := st.lookup(m.DiffID, m.Compression); ok {
				return l, nil
			}
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var l *fileLayer
	switch c := sniffCompression(br); c {
	case Gzip, Zstd:
		l, err = st.ingest(ctx, br, sum)
	case "none":
		l, err = st.compress(ctx, br, Gzip, 0)
	case "bzip2":
		l, err = st.compress(ctx, bzip2.NewReader(br), Gzip, 0)
	default:
		return nil, fmt.Errorf("root filesystem tarball: unsupported compression %s (use gzip, zstd, bzip2 or none)", c)
	}
	if err != nil {
		return nil, fmt.Errorf("storing root filesystem layer: %w", err)
	}
	b, _ := json.Marshal(l.meta)
	if err := writeFileAtomic(index, b); err != nil {
		return nil, err
	}
	return l, nil
}
