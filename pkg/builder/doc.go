// Package builder installs a VM's packages into a base root (in a chroot or a Docker container) and returns the packages layer, through a content-addressed cache.
package builder
