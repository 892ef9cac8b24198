// Package verify proves an image holds what its VM holds: it flattens the image's layers as a
// stream and compares the result, entry by entry and package by package, with a source's tree.
package verify
