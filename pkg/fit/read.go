package fit

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Bounds on what fit reads of the VM's configuration.
const (
	maxFile      = 1 << 20  // a larger file is skipped and named in Problems
	maxTotal     = 48 << 20 // all files together
	maxFiles     = 30000
	maxLineBytes = 64 << 10
)

// configPaths are the VM paths fit reads (directories recursively), relative to the root.
var configPaths = append([]string{
	"/etc/fstab", "/etc/modules", "/etc/modules-load.d",
	"/etc/sysctl.conf", "/etc/sysctl.d", "/etc/crontab", "/etc/cron.d", "/var/spool/cron/crontabs",
	"/etc/hostname", "/etc/hosts", "/etc/nginx/sites-enabled", "/etc/nginx/conf.d", "/etc/nginx/nginx.conf",
	"/etc/postgresql", "/etc/redis", "/etc/mysql", "/etc/ssh/sshd_config", "/etc/mongod.conf",
	"/etc/apache2/ports.conf", "/etc/apache2/sites-enabled",
}, services.UnitPaths...)

// readConfig reads configPaths from the VM into memory: regular files and symlinks, bounded.
func readConfig(ctx context.Context, src Source) (*services.MemFS, []string) {
	m := services.NewMemFS()
	var problems []string
	st := &readState{m: m}
	for _, p := range configPaths {
		ts, err := src.Files(ctx, wire.TreeArgs{Paths: []string{strings.TrimPrefix(p, "/")}, Recursive: true, Compression: "gzip"})
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		err = st.read(ts)
		ts.Close()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
		}
	}
	return m, append(problems, st.skipped...)
}

type readState struct {
	m            *services.MemFS
	total, files int
	skipped      []string
}

func (st *readState) read(rd io.Reader) error {
	tr := tar.NewReader(rd)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if st.files++; st.files > maxFiles {
			return fmt.Errorf("more than %d files", maxFiles)
		}
		p := path.Clean("/" + h.Name)
		switch h.Typeflag {
		case tar.TypeSymlink:
			st.m.AddSymlink(p, h.Linkname)
		case tar.TypeDir:
			st.m.AddDir(p)
		case tar.TypeReg:
			if h.Size > maxFile || st.total+int(h.Size) > maxTotal {
				st.skipped = append(st.skipped, fmt.Sprintf("%s: %d bytes, not read (limit %d)", p, h.Size, maxFile))
				continue
			}
			b, err := io.ReadAll(io.LimitReader(tr, maxFile))
			if err != nil {
				return err
			}
			st.total += len(b)
			st.m.AddFile(p, b)
		}
	}
}

// lines returns a file's non-comment, non-empty lines with their numbers.
func lines(b []byte, comment string) []numbered {
	var out []numbered
	for i, l := range strings.Split(string(b), "\n") {
		if len(l) > maxLineBytes {
			continue
		}
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, comment) {
			continue
		}
		out = append(out, numbered{i + 1, l})
	}
	return out
}

type numbered struct {
	n    int
	text string
}

// files lists the regular files of a directory in the tree with the suffix given ("" any).
func files(m *services.MemFS, dir, suffix string) []string {
	var out []string
	for _, n := range m.ReadDir(dir) {
		p := path.Join(dir, n)
		if _, err := m.ReadFile(p); err == nil && strings.HasSuffix(n, suffix) {
			out = append(out, p)
		}
	}
	return out
}
