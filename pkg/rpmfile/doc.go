// Package rpmfile reads RPM packages (.rpm) as untrusted input: the lead, the signature header
// (skipped), the main header's identity tags (name, epoch, version, release, arch) and payload
// tags, and the payload: a gzip, xz, zstd or bzip2 compressed cpio "newc" archive whose entries
// are converted to tar headers and written as a layer by debfile.WritePayload's rules.
package rpmfile
