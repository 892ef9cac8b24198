package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vm2image/vm2image/internal/tailbuf"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// Files placed in the build root for the build only.
const (
	policyRCPath   = "/usr/sbin/policy-rc.d"
	aptConfPath    = "/etc/apt/apt.conf.d/99vm2image-build"
	unsafeIOPath   = "/etc/dpkg/dpkg.cfg.d/vm2image-unsafe-io"
	resolvConfPath = "/etc/resolv.conf"
	eatMyDataPath  = "/tmp/.vm2image-build/libeatmydata.so"
)

// policyRC tells invoke-rc.d and deb-systemd-invoke not to start services.
const policyRC = "#!/bin/sh\n# vm2image: no service starts while packages are installed.\nexit 101\n"

// aptConf bounds how long apt waits for a repository that does not answer, and keeps the
// progress output plain.
const aptConf = `// vm2image build settings, removed after the build.
Acquire::http::Timeout "30";
Acquire::https::Timeout "30";
Acquire::ftp::Timeout "30";
Acquire::Retries "2";
Dpkg::Use-Pty "false";
Dpkg::Progress-Fancy "false";
APT::Keep-Downloaded-Packages "true";
`

// prepare writes the VM's repository files and the build's own settings into the root.
func (b *build) prepare(ctx context.Context) error {
	if err := b.writeRepoFiles(ctx); err != nil {
		return err
	}
	if b.in.Plan.Manager == pkgmgr.Dpkg {
		if err := b.place(ctx, policyRCPath, []byte(policyRC), 0o755); err != nil {
			return err
		}
		if err := b.place(ctx, aptConfPath, []byte(aptConf), 0o644); err != nil {
			return err
		}
	}
	if b.opts.Backend == Chroot { // the engine gives containers their own resolv.conf
		conf, err := os.ReadFile("/etc/resolv.conf")
		if err != nil {
			return fmt.Errorf("reading the host's resolv.conf: %w", err)
		}
		if err := b.place(ctx, resolvConfPath, conf, 0o644); err != nil {
			return err
		}
	}
	return b.disableFsync(ctx)
}

// disableFsync makes the installation skip fsync: eatmydata when it loads in the root, else
// dpkg's force-unsafe-io.
func (b *build) disableFsync(ctx context.Context) error {
	if b.opts.Fsync {
		return nil
	}
	if b.outside { // the host's installer: no preload that the root's scriptlets would inherit
		b.opts.Logf("fsync stays on: the installer runs from outside the root")
		return nil
	}
	if b.opts.NoFsyncMethod != NoFsyncUnsafeIO {
		lib, err := b.eatMyData(ctx)
		if err != nil {
			return err
		}
		if lib != "" {
			b.opts.Logf("fsync disabled with eatmydata (%s)", lib)
			b.env = append(b.env, "LD_PRELOAD="+lib)
			return nil
		}
		if b.opts.NoFsyncMethod == NoFsyncEatMyData {
			b.res.Errors = append(b.res.Errors, "eatmydata does not load in the build root: fsync stays on")
			return nil
		}
	}
	if b.in.Plan.Manager != pkgmgr.Dpkg {
		b.opts.Logf("fsync stays on: no eatmydata for this root")
		return nil
	}
	b.opts.Logf("fsync disabled with dpkg's force-unsafe-io")
	return b.place(ctx, unsafeIOPath, []byte("# vm2image build setting, removed after the build.\nforce-unsafe-io\n"), 0o644)
}

// eatMyData returns the path in the root of a libeatmydata that loads there: the root's own,
// or the host's copied in. "" when neither loads (none, another architecture, an older libc).
func (b *build) eatMyData(ctx context.Context) (string, error) {
	for _, rel := range globAll(b.in.BaseRoot, libGlobs) {
		if ok, err := b.preloads(ctx, "/"+rel); ok || err != nil {
			return "/" + rel, err
		}
	}
	host := globAll("/", libGlobs)
	if len(host) == 0 {
		return "", nil
	}
	data, err := os.ReadFile("/" + host[0])
	if err != nil {
		return "", nil
	}
	if err := b.place(ctx, eatMyDataPath, data, 0o644); err != nil {
		return "", err
	}
	ok, err := b.preloads(ctx, eatMyDataPath)
	if ok || err != nil {
		return eatMyDataPath, err
	}
	return "", nil
}

// libGlobs find libeatmydata in a root.
var libGlobs = []string{"usr/lib/*/libeatmydata.so.1", "usr/lib64/libeatmydata.so.1", "usr/lib/libeatmydata.so.1"}

func globAll(root string, globs []string) []string {
	var out []string
	for _, g := range globs {
		m, _ := filepath.Glob(filepath.Join(root, g))
		for _, p := range m {
			if rel, err := filepath.Rel(root, p); err == nil {
				out = append(out, filepath.ToSlash(rel))
			}
		}
	}
	return out
}

// preloads reports whether the dynamic loader of the root loads lib without complaint.
func (b *build) preloads(ctx context.Context, lib string) (bool, error) {
	tail := &tailbuf.Buffer{Max: 4096}
	env := append(append([]string{}, baseEnv...), "LD_PRELOAD="+lib)
	err := b.be.run(ctx, []string{"true"}, env, tail)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return err == nil && !strings.Contains(tail.String(), "ld.so") && !strings.Contains(tail.String(), "preload"), nil
}
