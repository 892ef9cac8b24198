// Package filecopy makes one file hold another's contents: a copy, a reflink or a hard link,
// each the way the caller allows.
package filecopy
