package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/vm2image/vm2image/internal/engine"
	"github.com/vm2image/vm2image/internal/filecopy"
	"github.com/vm2image/vm2image/pkg/archive"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// docker runs the plan in a container of the base image through the engine's API: one
// long-lived container, one exec per step, then the container's filesystem is exported and
// unpacked on the host for the diff.
type docker struct {
	cli      *client.Client
	id       string
	manager  pkgmgr.Manager
	workDir  string
	exported string // the unpacked export, once tree ran
	offline  bool   // disconnected from the engine's bridge network
	logf     func(string, ...any)
}

// dockerCaps are the capabilities a build container keeps: the sandbox's set (see
// internal/sandbox.Kept), the engine's default without CAP_MKNOD and CAP_NET_RAW.
var dockerCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETFCAP",
	"SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// bridge is the engine's default network, the build container's while it fetches.
const bridge = "bridge"

var _ backend = (*docker)(nil)

// newDocker creates and starts a container of image that sleeps while the steps run as execs;
// archives, when set, is bound at /var/cache/apt/archives.
func newDocker(ctx context.Context, image, archives, workDir string, m pkgmgr.Manager, logf func(string, ...any)) (*docker, error) {
	cli, err := engine.Connect(ctx)
	if err != nil {
		return nil, err
	}
	d := &docker{cli: cli, manager: m, workDir: workDir, logf: logf}
	// Never privileged; every capability but dockerCaps dropped; no setuid gains.
	hc := &container.HostConfig{Privileged: false, CapDrop: []string{"ALL"}, CapAdd: dockerCaps,
		SecurityOpt: []string{"no-new-privileges"}, NetworkMode: bridge}
	if archives != "" {
		hc.Binds = []string{archives + ":/var/cache/apt/archives"}
	}
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Entrypoint: []string{}, Cmd: []string{"sleep", "infinity"},
			User: "0:0", WorkingDir: "/", Labels: map[string]string{"vm2image.builder": "1"}},
		HostConfig: hc,
	})
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("creating the build container from %s: %w", image, err)
	}
	d.id = cr.ID
	if _, err := cli.ContainerStart(ctx, d.id, client.ContainerStartOptions{}); err != nil {
		d.close()
		return nil, fmt.Errorf("starting the build container from %s: %w", image, err)
	}
	return d, nil
}

// setNetwork connects the container to the engine's bridge network or disconnects it, which
// leaves it only loopback.
func (d *docker) setNetwork(ctx context.Context, on bool) error {
	if d.offline == !on {
		return nil
	}
	var err error
	if on {
		_, err = d.cli.NetworkConnect(ctx, bridge, client.NetworkConnectOptions{Container: d.id})
	} else {
		_, err = d.cli.NetworkDisconnect(ctx, bridge, client.NetworkDisconnectOptions{Container: d.id, Force: true})
	}
	if err != nil {
		return fmt.Errorf("switching the build container's network (on: %v): %w", on, err)
	}
	d.offline = !on
	return nil
}

// run runs argv as an exec in the container, its output demultiplexed into out.
func (d *docker) run(ctx context.Context, argv, env []string, out io.Writer) error {
	ex, err := d.cli.ExecCreate(ctx, d.id, client.ExecCreateOptions{User: "0:0", WorkingDir: "/",
		AttachStdout: true, AttachStderr: true, Env: env, Cmd: argv})
	if err != nil {
		return fmt.Errorf("creating exec %s: %w", strings.Join(argv, " "), err)
	}
	att, err := d.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("starting exec %s: %w", strings.Join(argv, " "), err)
	}
	done := make(chan struct{})
	go func() { // the hijacked connection ignores ctx: close it to end the copy
		select {
		case <-ctx.Done():
			att.Close()
		case <-done:
		}
	}()
	_, err = stdcopy.StdCopy(out, out, att.Reader)
	close(done)
	att.Close()
	if ctx.Err() != nil {
		return fmt.Errorf("running %s: %w", strings.Join(argv, " "), ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("reading output of %s: %w", strings.Join(argv, " "), err)
	}
	return d.exitStatus(ctx, ex.ID, argv)
}

// exitStatus waits (briefly: the output has ended) for the exec to finish and returns its status.
func (d *docker) exitStatus(ctx context.Context, id string, argv []string) error {
	for i := 0; ; i++ {
		ins, err := d.cli.ExecInspect(ctx, id, client.ExecInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspecting exec %s: %w", strings.Join(argv, " "), err)
		}
		if !ins.Running {
			if ins.ExitCode != 0 {
				return &exitError{argv: argv, code: ins.ExitCode}
			}
			return nil
		}
		if i > 200 {
			return fmt.Errorf("running %s: still running after its output ended", strings.Join(argv, " "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeFile copies a one-file tar into the container; missing parents are created by the engine.
func (d *docker) writeFile(ctx context.Context, p string, data []byte, mode fs.FileMode) error {
	rel, err := cleanRel(p)
	if err != nil {
		return err
	}
	if err := d.run(ctx, []string{"mkdir", "-p", "/" + path.Dir(rel)}, nil, io.Discard); err != nil {
		return fmt.Errorf("writing %s in the build container: %w", p, err)
	}
	if err := d.run(ctx, []string{"rm", "-f", "/" + rel}, nil, io.Discard); err != nil { // a symlink in the way
		return fmt.Errorf("writing %s in the build container: %w", p, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	h := &tar.Header{Typeflag: tar.TypeReg, Name: path.Base(rel), Mode: int64(mode.Perm()), Size: int64(len(data)), ModTime: time.Now()}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	_, err = d.cli.CopyToContainer(ctx, d.id, client.CopyToContainerOptions{DestinationPath: "/" + path.Dir(rel), Content: &buf})
	if err != nil {
		return fmt.Errorf("writing %s in the build container: %w", p, err)
	}
	return nil
}

func (d *docker) rename(ctx context.Context, from, to string) error {
	return d.run(ctx, []string{"mv", "-f", from, to}, nil, io.Discard)
}

func (d *docker) remove(ctx context.Context, p string) error {
	return d.run(ctx, []string{"rm", "-f", p}, nil, io.Discard)
}

func (d *docker) exists(ctx context.Context, p string) (bool, error) {
	_, err := d.cli.ContainerStatPath(ctx, d.id, client.ContainerStatPathOptions{Path: p})
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// dbPaths are the files and directories pkgmgr.Read reads, per manager.
var dbPaths = map[pkgmgr.Manager][]string{
	pkgmgr.Dpkg:   {"var/lib/dpkg/status", "var/lib/dpkg/updates", "var/lib/apt/extended_states"},
	pkgmgr.RPM:    {"usr/lib/sysimage/rpm", "var/lib/rpm"},
	pkgmgr.APK:    {"lib/apk/db/installed", "etc/apk/world"},
	pkgmgr.Pacman: {"var/lib/pacman/local"},
}

// readDB copies the package database out of the container and reads it.
func (d *docker) readDB(ctx context.Context) (*pkgmgr.DB, error) {
	dir, err := os.MkdirTemp(d.workDir, "db-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, p := range append([]string{"etc/os-release", "usr/lib/os-release"}, dbPaths[d.manager]...) {
		if err := d.copyOut(ctx, p, dir); err != nil {
			return nil, err
		}
	}
	return pkgmgr.Read(ctx, dir)
}

// copyOut copies p (relative) from the container to the same place under dir; a missing p is
// no error.
func (d *docker) copyOut(ctx context.Context, p, dir string) error {
	res, err := d.cli.CopyFromContainer(ctx, d.id, client.CopyFromContainerOptions{SourcePath: "/" + p})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copying %s out of the build container: %w", p, err)
	}
	defer res.Content.Close()
	parent := filepath.Join(dir, filepath.FromSlash(path.Dir(p)))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if err := archive.Apply(ctx, parent, res.Content, archive.Logf(nil)); err != nil {
		return fmt.Errorf("copying %s out of the build container: %w", p, err)
	}
	return nil
}

// dockerFiles are what the engine puts into every container: they are reset to the base's.
// The engine mounts its own hostname, hosts and resolv.conf over the image's, so what a
// maintainer script writes there (netbase creates /etc/hosts when it is missing) does not reach
// the layer: the VM's diff layer carries those files.
var dockerFiles = []string{".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"}

// tree stops the container, exports its filesystem and unpacks it under the work directory.
func (d *docker) tree(ctx context.Context) (string, error) {
	if _, err := d.cli.ContainerKill(ctx, d.id, client.ContainerKillOptions{}); err != nil && !cerrdefs.IsConflict(err) {
		return "", fmt.Errorf("stopping the build container: %w", err)
	}
	rc, err := d.cli.ContainerExport(ctx, d.id, client.ContainerExportOptions{})
	if err != nil {
		return "", fmt.Errorf("exporting the build container: %w", err)
	}
	defer rc.Close()
	dir := filepath.Join(d.workDir, "export")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := archive.Apply(ctx, dir, rc, archive.Logf(d.logf)); err != nil {
		return "", fmt.Errorf("unpacking the build container's export: %w", err)
	}
	d.exported = dir
	return dir, nil
}

// resetDockerFiles makes the engine's own files in the exported tree what they are in base.
func resetDockerFiles(tree, base string) error {
	for _, p := range dockerFiles {
		dst := filepath.Join(tree, p)
		if err := os.Remove(dst); err != nil && !isNotExist(err) {
			return fmt.Errorf("resetting %s: %w", p, err)
		}
		if err := copyEntry(filepath.Join(base, p), dst); err != nil && !isNotExist(err) {
			return fmt.Errorf("resetting %s: %w", p, err)
		}
	}
	return nil
}

// copyEntry copies a regular file or a symlink with its mode, owner and times.
func copyEntry(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(t, dst)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("copying %s: not a regular file or symlink", src)
	}
	if err := filecopy.Copy(context.Background(), src, dst, 0o644, filecopy.Exclusive); err != nil {
		return err
	}
	return copyMeta(fi, dst)
}

func (d *docker) close() error {
	var errs []error
	if d.id != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := d.cli.ContainerRemove(ctx, d.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing the build container: %w", err))
		}
		d.id = ""
	}
	if d.cli != nil {
		errs = append(errs, d.cli.Close())
		d.cli = nil
	}
	return errors.Join(errs...)
}
