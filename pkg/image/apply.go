package image

import (
	"context"
	"io"
)

// ApplyLayer applies one uncompressed layer tar to the tree at root, as Unpack applies each
// layer of an image: whiteouts and opaque directories honoured, names checked.
func ApplyLayer(ctx context.Context, root string, r io.Reader) error {
	return applyLayer(ctx, root, r)
}
