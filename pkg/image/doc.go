// Package image resolves base images, unpacks them, assembles layered images with
// go-containerregistry and writes them as docker-archives, OCI layouts, into the engine or to a registry.
package image
