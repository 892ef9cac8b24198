// Package testenv gates heavy tests (root, debootstrap, the Docker engine) and builds the cached
// Debian roots that serve as fixture VMs.
package testenv
