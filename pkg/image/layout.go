package image

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// refNameAnnotation is the annotation an OCI layout's index gives each tagged manifest.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// splitLayoutRef splits "DIR[:TAG]" as skopeo does: the tag is what follows the last colon,
// unless that part holds a "/" and so belongs to the directory.
func splitLayoutRef(ref string) (dir, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i+1:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

// fromLayout returns the image tagged tag in the OCI layout at dir, or its only image when tag
// is empty. An index is resolved to the manifest for p.
func fromLayout(dir, tag string, p v1.Platform) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout index: %w", err)
	}
	var found []v1.Descriptor
	var tags []string
	for _, d := range im.Manifests {
		t := d.Annotations[refNameAnnotation]
		tags = append(tags, t)
		if t == tag || tag == "" {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no image tagged %q (tags: %q)", tag, tags)
	case len(found) > 1:
		return nil, fmt.Errorf("%d images match; name one of the tags %q", len(found), tags)
	}
	d := found[0]
	switch {
	case d.MediaType.IsImage():
		return idx.Image(d.Digest)
	case d.MediaType.IsIndex():
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return imageForPlatform(child, p)
	}
	return nil, fmt.Errorf("manifest %s has media type %s, not an image", d.Digest, d.MediaType)
}

func imageForPlatform(idx v1.ImageIndex, p v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() && d.Platform != nil && d.Platform.Satisfies(p) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("index has no image for %s", p.String())
}
