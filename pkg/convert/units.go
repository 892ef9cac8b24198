package convert

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Bounds on what unitTree reads from the VM.
const (
	maxUnitTreeBytes = 32 << 20
	maxUnitTreeFiles = 20000
)

// ErrNoServices marks a conversion that found no service to start, with RequireServices.
var ErrNoServices = errors.New("no services to start")

// unitTree reads the VM's systemd unit directories and crontab spools through the source (never
// from the host's paths) into an in-memory tree: regular files and symlinks, bounded.
func (r *run) unitTree(ctx context.Context) *services.MemFS {
	m := services.NewMemFS()
	dirs := append([]string{"/var/spool/cron/crontabs", "/etc/cron.d"}, services.UnitPaths...)
	dirs = append(dirs, services.GeneratorInputs...)
	total, files := 0, 0
	for _, d := range dirs {
		ts, err := r.src.Files(ctx, wire.TreeArgs{Paths: []string{strings.TrimPrefix(d, "/")}, Recursive: true, Compression: "gzip"})
		if err != nil {
			r.opts.Logf("reading %s: %v", d, err)
			continue
		}
		err = readUnitTar(ts, m, &total, &files)
		ts.Close()
		if err != nil {
			r.opts.Logf("reading %s: %v", d, err)
		}
	}
	return m
}

func readUnitTar(rd io.Reader, m *services.MemFS, total, files *int) error {
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if *files++; *files > maxUnitTreeFiles {
			return fmt.Errorf("more than %d files", maxUnitTreeFiles)
		}
		p := path.Clean("/" + h.Name)
		if generatorInput(p) && h.Typeflag == tar.TypeReg && !services.KeepGeneratorInput(p) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			m.AddSymlink(p, h.Linkname)
		case tar.TypeDir:
			m.AddDir(p)
		case tar.TypeReg:
			if h.Size > services.MaxUnitFile || *total+int(h.Size) > maxUnitTreeBytes {
				continue
			}
			b, err := io.ReadAll(io.LimitReader(tr, services.MaxUnitFile))
			if err != nil {
				return err
			}
			*total += len(b)
			m.AddFile(p, b)
		}
	}
}

// generatorInput reports whether p lies under one of services.GeneratorInputs.
func generatorInput(p string) bool {
	for _, d := range services.GeneratorInputs {
		if strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// cronInUse reports whether the VM has crontabs of its own: user crontabs, or /etc/cron.d files
// beyond the placeholders Debian's packages ship.
func cronInUse(m *services.MemFS) bool {
	if len(m.ReadDir("/var/spool/cron/crontabs")) > 0 {
		return true
	}
	for _, n := range m.ReadDir("/etc/cron.d") {
		if n != ".placeholder" && n != "e2scrub_all" {
			return true
		}
	}
	return false
}

// Services returns the services a conversion of src with opts' service flags would start, and
// those it would skip (for inspect). It reads the processes without their environments.
func Services(ctx context.Context, src source.Source, opts Options) (services.Config, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Warnf == nil {
		opts.Warnf = opts.Logf
	}
	r := &run{opts: opts, src: src, report: &Report{}}
	var err error
	if r.procs, err = src.Processes(ctx, wire.ProcessArgs{}); err != nil {
		return services.Config{}, fmt.Errorf("listing processes: %w", err)
	}
	return r.selectServices(ctx)
}
