// Package cache owns vm2image's cache root: one private directory (0700, default
// /var/cache/vm2image) holding every cache kind in a named subdirectory, the lock scheme that
// lets concurrent conversions share keyed entries (built once under an exclusive lock, used
// under shared locks that keep a prune away), and the listing and pruning of every kind.
package cache
