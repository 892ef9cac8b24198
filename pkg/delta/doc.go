// Package delta computes and applies librsync-compatible block deltas (rdiff's rollsum and BLAKE2 signature format), bounding everything it reads from the other side.
package delta
