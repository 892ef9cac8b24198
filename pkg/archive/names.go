package archive

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Names with a meaning in OCI layers and in PAX headers.
const (
	// WhiteoutPrefix starts the name of an entry that deletes the rest of its name from the
	// layers below (".wh.NAME").
	WhiteoutPrefix = ".wh."
	// OpaqueMarker is the entry that hides what the layers below hold in its directory.
	OpaqueMarker = ".wh..wh..opq"
	// PAXXattrPrefix prefixes extended attributes stored as PAX records, as GNU tar,
	// libarchive and the Docker engine write them.
	PAXXattrPrefix = "SCHILY.xattr."
)

// ErrUnsafePath is wrapped by the errors of entries that would reach outside the directory
// they are applied to: absolute names, "..", NUL bytes, and links or symlinked parents that
// climb out of it.
var ErrUnsafePath = errors.New("path escapes the root")

// ErrEngineDiffers is wrapped by the errors of layer entries that container engines apply
// otherwise than a chroot-like reading does, so that what the converter and verify see of an
// image would not be what a container sees: an opaque marker at a layer's root (ignored by
// overlayfs), a whiteout and an entry of one name in one layer (the entry replaces the whiteout
// and merges with the layers below), a name below a symlink or a non-directory of the layers
// below (the engine makes a directory there, hiding the symlink), and a hard link to a file the
// layer does not hold (the engine refuses the layer). Layers made by engines and by vm2image
// hold none of these.
var ErrEngineDiffers = errors.New("a container engine applies this otherwise")

// SafeName cleans a tar entry name to a relative slash path ("." for the root itself),
// refusing names with a NUL byte, absolute names and names with a ".." component.
func SafeName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: %q holds a NUL byte", ErrUnsafePath, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrUnsafePath, name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q climbs out with \"..\"", ErrUnsafePath, name)
		}
	}
	return path.Clean("./" + name), nil
}

// IsWhiteout reports whether the last component of name marks a whiteout or an opaque
// directory: a name that a layer cannot carry as a file.
func IsWhiteout(name string) bool {
	return strings.HasPrefix(path.Base(name), WhiteoutPrefix)
}
