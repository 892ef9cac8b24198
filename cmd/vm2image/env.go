package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/pkg/cache"
)

// Environment variables the converter reads (here only: libraries take Options fields).
const (
	envToken = "VM2IMAGE_TOKEN" // the agent's token when no --token-file is given
	envInit  = "VM2IMAGE_INIT"  // the vm2image-init put in images (default: beside vm2image, then PATH)
	envAgent = "VM2IMAGE_AGENT" // the agent binary experiments start (default: beside vm2image, then PATH)
	// envJobIndex is the completion index Kubernetes gives each pod of an Indexed Job: a fleet
	// worker converts that VM of the inventory when --index is not given.
	envJobIndex = "JOB_COMPLETION_INDEX"
)

// addCacheDirFlag adds --cache-dir: the one cache root, the same in every command.
func addCacheDirFlag(f *pflag.FlagSet, dir *string) {
	f.StringVar(dir, "cache-dir", defaultCacheRoot(), "cache root: packages layers, unpacked roots, base image blobs and apt archives in subdirectories, all private (0700)")
}

// defaultCacheRoot is /var/cache/vm2image for root, the user's cache directory otherwise (a
// verify needs no root).
func defaultCacheRoot() string {
	if os.Geteuid() == 0 {
		return cache.DefaultRoot
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "vm2image")
	}
	return cache.DefaultRoot
}

// noteTo prints notes the operator must see even without --verbose (a cache directory made
// private) to w.
func noteTo(w io.Writer) func(string, ...any) {
	return func(format string, args ...any) { fmt.Fprintf(w, "note: "+format+"\n", args...) }
}
