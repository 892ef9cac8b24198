// Package pacfile reads pacman packages (.pkg.tar.zst, .pkg.tar.xz, .pkg.tar.gz) as untrusted
// input: the .PKGINFO that names the package, and the payload (the tar's entries beside its
// top-level metadata members), written as a layer by debfile.WritePayload's rules.
package pacfile
