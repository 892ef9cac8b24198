// Package diff compares two file trees as they stream and lists the changes that turn the old one into the new one.
package diff
