// Package debfile reads Debian binary packages (.deb): the ar archive, its control fields and
// its data tar (gzip, xz, zstd or uncompressed), bounded, as untrusted input. Its payload rules
// (WritePayload) and bounded decompressors (Decompress) serve every package format: pacman's
// (pkg/pacfile) and rpm's (pkg/rpmfile) payloads are written by the same code.
package debfile
