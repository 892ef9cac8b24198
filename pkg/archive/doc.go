// Package archive applies tar streams to directories: OCI layers (whiteouts and opaque
// directories honoured) and plain root-filesystem archives, under one rule for names, links and
// symlinks that keeps every write inside the target directory.
package archive
