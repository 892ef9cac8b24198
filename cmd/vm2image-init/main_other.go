//go:build !linux

// Command vm2image-init is the entrypoint of images vm2image writes; it runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "vm2image-init: runs on Linux only")
	os.Exit(2)
}
