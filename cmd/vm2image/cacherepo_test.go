package main

import (
	"errors"
	"testing"
)

// TestCheckCacheRepo: --cache-repo wants REGISTRY/REPO; anything else is a usage error.
func TestCheckCacheRepo(t *testing.T) {
	for _, ok := range []string{"", "127.0.0.1:5000/vm2image-cache", "registry.local/team/cache"} {
		if _, err := checkCacheRepo(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"cache", "team/cache", "r.local/c@sha256:0000", "r.local/UPPER", "r.local/c:tag:x"} {
		_, err := checkCacheRepo(bad)
		var ue *usageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("%q: err %v, want a usage error", bad, err)
		}
	}
}
