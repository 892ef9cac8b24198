package main

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// checkCacheRepo checks a --cache-repo value: a repository (REGISTRY/REPO), no tag or digest.
func checkCacheRepo(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if strings.ContainsAny(s, "@") {
		return "", usage(fmt.Errorf("--cache-repo %s: want a repository (REGISTRY/REPO), not a digest", s))
	}
	repo, err := name.NewRepository(s, name.StrictValidation)
	if err != nil {
		return "", usage(fmt.Errorf("--cache-repo %s: want a repository (REGISTRY/REPO): %w", s, err))
	}
	if !strings.Contains(s, "/") || repo.RegistryStr() == name.DefaultRegistry && !strings.HasPrefix(s, name.DefaultRegistry) {
		return "", usage(fmt.Errorf("--cache-repo %s: name the registry (REGISTRY/REPO)", s))
	}
	return s, nil
}
