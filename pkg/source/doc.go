// Package source opens what a conversion reads from: a remote agent (HOST:PORT), a directory
// (dir:PATH) or a root-filesystem archive (tar:PATH), all behind one interface.
package source
