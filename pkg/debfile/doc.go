// Package debfile reads Debian binary packages (.deb): the ar archive, its control fields and
// its data tar (gzip, xz, zstd or uncompressed), bounded, as untrusted input.
package debfile
