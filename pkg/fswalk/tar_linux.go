package fswalk

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"golang.org/x/sys/unix"
)

// WriteTar streams the tree at root to w as an uncompressed PAX tar, in the order of Walk.
//
// Names are relative without "./" ("etc/passwd"), directories end in "/", and the root itself
// is not written. Owners are numeric only (no user or group names); mtimes keep nanoseconds (PAX
// "mtime"); extended attributes, security.capability included, are PAX "SCHILY.xattr.NAME"
// records as GNU tar and the Docker engine read them (opts.Xattrs must be set to read them).
// A regular file with more than one link is written once with its contents and then as
// TypeLink entries naming that first path. Sockets cannot be archived: they are counted and
// left out. Sparse files are written at their full length.
//
// The stream stays valid whatever the tree does meanwhile: a file that vanished before it was
// opened is left out, and one whose size changed while it was read is cut or padded with zeros
// to the size in its header; both are reported to opts.OnError (changes wrap ErrChanged).
// Errors writing to w and errors returned by OnError end the stream and are returned.
func WriteTar(ctx context.Context, w io.Writer, root string, opts Options) (Stats, error) {
	wk, err := newWalker(ctx, root, opts)
	if err != nil {
		return Stats{}, err
	}
	defer wk.close()
	t := newTarWriter(wk, w)
	wk.visit = t.add
	return t.finish(wk.walkRoot())
}

type devIno struct{ dev, ino uint64 }

// tarWriter turns walked entries into tar entries.
type tarWriter struct {
	wk    *walker
	bw    *bufio.Writer
	tw    *tar.Writer
	hdr   tar.Header
	pax   map[string]string
	links map[devIno]string // first path written for each inode with more than one link
	stats Stats
}

func newTarWriter(wk *walker, w io.Writer) *tarWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &tarWriter{wk: wk, bw: bw, tw: tar.NewWriter(bw), pax: map[string]string{}, links: map[devIno]string{}}
}

// finish ends the archive unless err (a walk's result) says it must not be, and returns the stats.
func (t *tarWriter) finish(err error) (Stats, error) {
	t.stats.Errors = t.wk.errors
	if err != nil {
		return t.stats, err
	}
	if err := t.tw.Close(); err != nil {
		return t.stats, fmt.Errorf("writing tar trailer: %w", err)
	}
	if err := t.bw.Flush(); err != nil {
		return t.stats, fmt.Errorf("flushing tar stream: %w", err)
	}
	return t.stats, nil
}

// add writes one walked entry.
func (t *tarWriter) add(e *fsmeta.Entry, dirfd int, name string) error {
	switch {
	case e.Path == ".":
		return nil
	case e.Type == fsmeta.TypeSocket:
		t.stats.SocketsSkipped++
		return nil
	case e.Type == fsmeta.TypeRegular:
		return t.addFile(e, dirfd, name)
	}
	t.setHeader(e)
	if err := t.writeHeader(); err != nil {
		return err
	}
	switch e.Type {
	case fsmeta.TypeDir:
		t.stats.Dirs++
	case fsmeta.TypeSymlink:
		t.stats.Symlinks++
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		t.stats.Devices++
	case fsmeta.TypeFIFO:
		t.stats.FIFOs++
	}
	return nil
}

// addFile writes a regular file: as a link to the first path of its inode, or with its contents.
func (t *tarWriter) addFile(e *fsmeta.Entry, dirfd int, name string) error {
	key := devIno{e.Dev, e.Ino}
	if e.Nlink > 1 {
		if first, ok := t.links[key]; ok {
			t.setHeader(e)
			t.hdr.Typeflag, t.hdr.Linkname, t.hdr.Size = tar.TypeLink, first, 0
			clear(t.pax) // the inode's xattrs came with its first path
			if err := t.writeHeader(); err != nil {
				return err
			}
			t.stats.Hardlinks++
			return nil
		}
	}
	fd := -1
	if e.Size > 0 {
		var err error
		if fd, err = t.wk.openFile(dirfd, name, e); err != nil {
			return t.wk.report(e.Path, err)
		}
		defer unix.Close(fd)
		refreshEntry(e, &t.wk.fst) // the header gets the size of what is read
	}
	t.setHeader(e)
	if err := t.writeHeader(); err != nil {
		return err
	}
	if e.Nlink > 1 {
		t.links[key] = e.Path
	}
	t.stats.Files++
	if fd < 0 {
		return nil
	}
	return t.copyContents(e, fd)
}

// copyContents writes exactly e.Size bytes of fd and reports a file that changed meanwhile.
func (t *tarWriter) copyContents(e *fsmeta.Entry, fd int) error {
	if t.wk.hooks.beforeCopy != nil {
		t.wk.hooks.beforeCopy(e.Path)
	}
	changed, fatal := copyFD(t.wk.ctx, t.tw, fd, e.Size, t.wk.copyBuf())
	if fatal != nil {
		return fatal
	}
	t.stats.Bytes += e.Size
	if changed == nil {
		changed = checkUnchanged(fd, &t.wk.fst)
	}
	if changed != nil {
		return t.wk.report(e.Path, errPath("reading", e.Path, changed))
	}
	return nil
}

// setHeader fills t.hdr for e; the PAX records map is reused.
func (t *tarWriter) setHeader(e *fsmeta.Entry) {
	clear(t.pax)
	t.hdr = tar.Header{
		Format:     tar.FormatPAX,
		Name:       e.Path,
		Mode:       int64(e.Mode & fsmeta.ModePerm),
		Uid:        int(e.UID),
		Gid:        int(e.GID),
		ModTime:    time.Unix(0, e.MTime),
		PAXRecords: t.pax,
	}
	switch e.Type {
	case fsmeta.TypeDir:
		t.hdr.Typeflag = tar.TypeDir
		t.hdr.Name += "/"
	case fsmeta.TypeRegular:
		t.hdr.Typeflag, t.hdr.Size = tar.TypeReg, e.Size
	case fsmeta.TypeSymlink:
		t.hdr.Typeflag, t.hdr.Linkname = tar.TypeSymlink, e.Target
	case fsmeta.TypeCharDev, fsmeta.TypeBlockDev:
		t.hdr.Typeflag = tar.TypeChar
		if e.Type == fsmeta.TypeBlockDev {
			t.hdr.Typeflag = tar.TypeBlock
		}
		t.hdr.Devmajor, t.hdr.Devminor = int64(e.DevMajor), int64(e.DevMinor)
	case fsmeta.TypeFIFO:
		t.hdr.Typeflag = tar.TypeFifo
	}
	for k, v := range e.Xattrs {
		t.pax["SCHILY.xattr."+k] = string(v)
	}
}

func (t *tarWriter) writeHeader() error {
	if err := t.tw.WriteHeader(&t.hdr); err != nil {
		return fmt.Errorf("writing tar header for %q: %w", t.hdr.Name, err)
	}
	t.stats.Entries++
	return nil
}
