// Package layer writes the changes of a filesystem diff as an uncompressed OCI layer tar, whiteouts and all.
package layer
