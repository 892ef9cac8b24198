// Package regcache keeps built layers in a registry repository (a cache repository) that
// converters on several machines share, as BuildKit's registry cache does: one small OCI
// manifest per cache key, tagged by a digest of the key, whose config records the key and the
// layer's digests and whose only layer is the layer blob. See README.md.
package regcache
