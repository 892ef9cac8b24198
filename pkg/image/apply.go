package image

import (
	"context"
	"io"

	"github.com/vm2image/vm2image/pkg/archive"
)

// ApplyLayer applies one uncompressed layer tar to the tree at root, as Unpack applies each
// layer of an image: whiteouts and opaque directories honoured, names checked.
func ApplyLayer(ctx context.Context, root string, r io.Reader) error {
	return archive.Apply(ctx, root, r, archive.Layer())
}
