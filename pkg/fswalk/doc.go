// Package fswalk walks a file tree inside a root, without following symlinks or leaving the root, and streams it as manifests, digests and PAX tarballs.
package fswalk
