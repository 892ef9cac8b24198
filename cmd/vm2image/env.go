package main

import (
	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/pkg/cache"
)

// Environment variables the converter reads (here only: libraries take Options fields).
const (
	envToken = "VM2IMAGE_TOKEN" // the agent's token when no --token-file is given
	envInit  = "VM2IMAGE_INIT"  // the vm2image-init put in images (default: beside vm2image, then PATH)
	envAgent = "VM2IMAGE_AGENT" // the agent binary experiments start (default: beside vm2image, then PATH)
)

// addCacheDirFlag adds --cache-dir: the one cache root, the same in every command.
func addCacheDirFlag(f *pflag.FlagSet, dir *string) {
	f.StringVar(dir, "cache-dir", cache.DefaultRoot, "cache root: packages layers, unpacked roots, base image blobs and apt archives in subdirectories, all private (0700)")
}
