// Package wirecompress compresses and decompresses the streams of the agent protocol by their
// wire names (zstd, gzip, none), bounded against a hostile peer.
package wirecompress
