// Package rootfs opens and reads the files of a VM's root directory with chroot semantics: a
// path, and every symlink met on the way, resolves inside the root ("/" and ".." stop at it,
// absolute links start from it), so no file of the host is ever reached through a VM's links.
// Only regular files are read, each read under a size bound the caller chooses per kind of file.
package rootfs
