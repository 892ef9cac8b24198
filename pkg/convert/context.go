package convert

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vm2image/vm2image/internal/filecopy"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/services"
)

// contextWriter writes files into FILE.context/, each atomically (a temporary file renamed
// over its name), and remembers what it created so that a failed conversion removes exactly
// that: files it did not write (a user's edits, notes, extra files) are never touched.
type contextWriter struct {
	dir        string
	createdDir bool
	created    []string // files that did not exist before
	written    []string // every file written, in order
}

// put writes name through fill, which gets the path of a new temporary file in the directory.
func (c *contextWriter) put(name string, fill func(tmp string) error) error {
	if !c.createdDir {
		if err := os.Mkdir(c.dir, 0o755); err == nil {
			c.createdDir = true
		} else if !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	f, err := os.CreateTemp(c.dir, "."+name+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	if err := fill(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	dst := filepath.Join(c.dir, name)
	_, statErr := os.Lstat(dst)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		c.created = append(c.created, dst)
	}
	c.written = append(c.written, dst)
	return nil
}

// bytes writes b as name with mode perm.
func (c *contextWriter) bytes(name string, b []byte, perm os.FileMode) error {
	return c.put(name, func(tmp string) error {
		if err := os.WriteFile(tmp, b, perm); err != nil {
			return err
		}
		return os.Chmod(tmp, perm)
	})
}

// rollback removes the files this writer created, and the directory if it made it and it is
// empty again.
func (c *contextWriter) rollback() {
	for _, p := range c.created {
		os.Remove(p)
	}
	if c.createdDir {
		os.Remove(c.dir) // fails, as it should, when someone put a file there meanwhile
	}
}

// writeContext writes an equivalent Dockerfile, services.yaml, compose.yaml, the init and (with
// ContextLayers) the layer tars the Dockerfile names, so `docker build FILE.context` rebuilds
// the image.
func (r *run) writeContext(ctx context.Context, c *contextWriter, tag string) error {
	type layerFile struct{ name, path, role string }
	var layers []layerFile
	var layerNames []string
	for i, role := range r.roles {
		if role == "runtime" {
			continue // the Dockerfile COPYs the init and services.yaml instead
		}
		name := fmt.Sprintf("%d-%s.tar", i+1, role)
		layers = append(layers, layerFile{name, r.layers[i].Path, role})
		layerNames = append(layerNames, name)
	}
	df := services.Dockerfile(r.report.Base.Ref, layerNames, r.services, services.ImageConfig{
		Env: []string{"PATH=" + services.DefaultPath}, Labels: r.imageConfig().Labels,
	})
	compose, err := services.Compose(tag, r.services, r.composeVolumes()...)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"Dockerfile", []byte(df)}, {services.ContextConfigName, r.servicesYAML}, {"compose.yaml", compose}} {
		if err := c.bytes(f.name, f.b, 0o644); err != nil {
			return err
		}
	}
	if err := c.put(services.ContextInitName, func(tmp string) error { return filecopy.Copy(ctx, r.opts.InitBinary, tmp, 0o755) }); err != nil {
		return err
	}
	if !r.opts.ContextLayers {
		return nil
	}
	for _, l := range layers {
		// The packages layer shares its inode with the layer cache: never hard-link it out.
		// The VM diff's whiteouts would be unpacked by ADD as plain .wh.* files: leave them out.
		mayLink := l.role == "vm-diff"
		filter := l.role == "vm-diff" && r.report.DiffLayer != nil && r.report.DiffLayer.Whiteouts+r.report.DiffLayer.Opaques > 0 ||
			l.role == "packages-config" || l.role == "volumes"
		err := c.put(l.name, func(tmp string) error {
			if filter {
				return copyWithoutWhiteouts(ctx, l.path, tmp)
			}
			return placeFile(ctx, l.path, tmp, mayLink)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// placeFile makes dst (an existing empty file) hold src's contents at the least disk cost: a
// reflink (shared extents, copy on write), else a hard link when mayLink (src is ours alone
// and nothing writes it again), else a copy. The result is readable by its owner only: layers
// hold the VM's files, secrets included.
func placeFile(ctx context.Context, src, dst string, mayLink bool) error {
	if !mayLink {
		return filecopy.Copy(ctx, src, dst, 0o600, filecopy.Reflink)
	}
	if err := filecopy.Copy(ctx, src, dst, 0o600, filecopy.Reflink, filecopy.HardLink); err != nil {
		return err
	}
	return os.Chmod(dst, 0o600) // a hard link has src's mode
}

// copyWithoutWhiteouts copies the layer tar src to dst leaving out whiteout entries (.wh.*),
// which a Dockerfile's ADD would unpack as files.
func copyWithoutWhiteouts(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	tr, tw := tar.NewReader(bufio.NewReaderSize(in, 1<<20)), tar.NewWriter(bw)
	for err == nil {
		var h *tar.Header
		if err = ctx.Err(); err != nil {
			break
		}
		if h, err = tr.Next(); err != nil {
			break
		}
		if archive.IsWhiteout(h.Name) {
			continue
		}
		if err = tw.WriteHeader(h); err == nil {
			_, err = io.Copy(tw, tr)
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	return errors.Join(err, out.Chmod(0o600), out.Close())
}
