package image

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// PushResult says what a push moved: the layers the repository lacked and were uploaded, the
// ones it already held (another image of the repository, an earlier push), and their bytes.
type PushResult struct {
	LayersNew      int   `json:"layers_new"`
	LayersExisting int   `json:"layers_existing"`
	BytesNew       int64 `json:"bytes_new"`      // compressed bytes of the new layers
	BytesExisting  int64 `json:"bytes_existing"` // compressed bytes the registry did not need again
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

// countExisting sorts img's layers into those repo holds and those it lacks, before a push.
func countExisting(ctx context.Context, repo name.Repository, img v1.Image) (PushResult, error) {
	var res PushResult
	c, err := newBlobChecker(ctx, repo)
	if err != nil {
		return res, err
	}
	layers, err := img.Layers()
	if err != nil {
		return res, err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return res, err
		}
		size, err := l.Size()
		if err != nil {
			return res, err
		}
		ok, err := c.has(ctx, d)
		if err != nil {
			return res, err
		}
		if ok {
			res.LayersExisting++
			res.BytesExisting += size
		} else {
			res.LayersNew++
			res.BytesNew += size
		}
	}
	return res, nil
}
