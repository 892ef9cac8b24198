package image

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// PushResult says what a push moved: the layers the repository lacked and were uploaded, the
// ones it already held (another image of the repository, an earlier push), the ones mounted
// from another repository of the registry (PushOptions.MountFrom), and their bytes.
type PushResult struct {
	LayersNew      int   `json:"layers_new"`
	LayersExisting int   `json:"layers_existing"`
	LayersMounted  int   `json:"layers_mounted"`
	BytesNew       int64 `json:"bytes_new"`      // compressed bytes of the new layers
	BytesExisting  int64 `json:"bytes_existing"` // compressed bytes the registry did not need again
	BytesMounted   int64 `json:"bytes_mounted"`  // compressed bytes mounted, not uploaded
	// Uploaded and Mounted are the digests of the layers uploaded and mounted.
	Uploaded []string `json:"uploaded,omitempty"`
	Mounted  []string `json:"mounted,omitempty"`
}

// blobChecker asks a registry whether a repository holds blobs (HEAD /v2/REPO/blobs/DIGEST).
type blobChecker struct {
	repo   name.Repository
	client *http.Client
}

func newBlobChecker(ctx context.Context, repo name.Repository) (*blobChecker, error) {
	auth, err := authn.DefaultKeychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("finding credentials for %s: %w", repo, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, http.DefaultTransport, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("reaching %s: %w", repo.RegistryStr(), err)
	}
	return &blobChecker{repo: repo, client: &http.Client{Transport: rt}}, nil
}

func (c *blobChecker) has(ctx context.Context, h v1.Hash) (bool, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", c.repo.Scheme(), c.repo.RegistryStr(), c.repo.RepositoryStr(), h)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("checking blob %s: %w", h, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("checking blob %s: registry answered %s", h, resp.Status)
}

// countExisting sorts img's layers into those repo holds and those it lacks, before a push; of
// those it lacks, the ones a repository of from (same registry) holds are mounted from there:
// mounts maps their digests to that repository.
func countExisting(ctx context.Context, repo name.Repository, img v1.Image, from []name.Repository) (PushResult, map[v1.Hash]name.Repository, error) {
	var res PushResult
	mounts := map[v1.Hash]name.Repository{}
	c, err := newBlobChecker(ctx, repo)
	if err != nil {
		return res, nil, err
	}
	var others []*blobChecker
	for _, f := range from {
		if f.RegistryStr() != repo.RegistryStr() || f.RepositoryStr() == repo.RepositoryStr() {
			continue // a mount crosses repositories of one registry
		}
		oc, err := newBlobChecker(ctx, f)
		if err != nil {
			return res, nil, err
		}
		others = append(others, oc)
	}
	layers, err := img.Layers()
	if err != nil {
		return res, nil, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return res, nil, err
		}
		size, err := l.Size()
		if err != nil {
			return res, nil, err
		}
		ok, err := c.has(ctx, d)
		if err != nil {
			return res, nil, err
		}
		if ok {
			res.LayersExisting++
			res.BytesExisting += size
			continue
		}
		src, err := holder(ctx, others, d)
		if err != nil {
			return res, nil, err
		}
		if src != nil {
			mounts[d] = *src
			res.LayersMounted++
			res.BytesMounted += size
			res.Mounted = append(res.Mounted, d.String())
			continue
		}
		res.LayersNew++
		res.BytesNew += size
		res.Uploaded = append(res.Uploaded, d.String())
	}
	return res, mounts, nil
}

// holder is the first repository of cs that holds blob d, or nil.
func holder(ctx context.Context, cs []*blobChecker, d v1.Hash) (*name.Repository, error) {
	for _, c := range cs {
		ok, err := c.has(ctx, d)
		if err != nil {
			return nil, err
		}
		if ok {
			return &c.repo, nil
		}
	}
	return nil, nil
}

// mountingImage is an image whose layers named in mounts are remote.MountableLayers: the push
// asks the registry to mount them from their repository instead of uploading them.
type mountingImage struct {
	v1.Image
	mounts map[v1.Hash]name.Repository
}

func (i mountingImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for k, l := range ls {
		out[k] = i.mountable(l)
	}
	return out, nil
}

func (i mountingImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.mountable(l), nil
}

func (i mountingImage) mountable(l v1.Layer) v1.Layer {
	d, err := l.Digest()
	if err != nil {
		return l
	}
	if repo, ok := i.mounts[d]; ok {
		return &remote.MountableLayer{Layer: l, Reference: repo.Tag("latest")}
	}
	return l
}
