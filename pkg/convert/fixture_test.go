package convert

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// The fixtures of the pipeline tests: a VM root written into a directory (a dir: source), a
// base image written as an OCI layout, and a stand-in init binary. Everything is built by the
// test as the user running it: no root, Docker engine or network.

// dpkgStatus is a two-package dpkg database; the base and the VM share it, so the packages
// phase finds nothing to install and says so.
const dpkgStatus = `Package: libfoo1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 10
Architecture: all
Version: 1.0-1
Description: test library

Package: foo
Status: install ok installed
Priority: optional
Section: misc
Installed-Size: 20
Architecture: all
Version: 2.0-1
Depends: libfoo1 (>= 1.0)
Description: test program
`

const osRelease = "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"

// pemKey is a private key block by its armour only: enough for the secret scan.
const pemKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

// vmFile is one entry of the test VM.
type vmFile struct {
	path string // relative to the root
	body string // a regular file's contents
	link string // symlink target
	hard string // hard link to this path (written before)
	dir  bool
}

// sharedFiles are in the base and the VM alike.
var sharedFiles = []vmFile{
	{path: "etc", dir: true},
	{path: "etc/os-release", body: osRelease},
	{path: "var", dir: true},
	{path: "var/lib", dir: true},
	{path: "var/lib/dpkg", dir: true},
	{path: "var/lib/dpkg/status", body: dpkgStatus},
	{path: "srv", dir: true},
	{path: "srv/app", dir: true},
	{path: "srv/app/same.txt", body: "identical text\n"},
}

// baseFiles are the base image's files (one layer).
var baseFiles = append(slices.Clone(sharedFiles),
	vmFile{path: "srv/app/config.ini", body: "mode=base\n"},  // modified by the VM
	vmFile{path: "srv/app/removed.txt", body: "base only\n"}, // deleted by the VM
)

// vmFiles are the test VM's root. Sizes matter: the report's figures are checked against them.
var vmFiles = append(slices.Clone(sharedFiles),
	vmFile{path: "etc/hostname", body: "Web_Server.example\n"},
	vmFile{path: "srv/app/config.ini", body: "mode=vm, changed\n"},
	vmFile{path: "srv/app/data.bin", body: "0123456789abcdef0123456789abcdef"},
	vmFile{path: "srv/app/data.link", link: "data.bin"},
	vmFile{path: "srv/app/data.hard", hard: "srv/app/data.bin"},
	vmFile{path: "root", dir: true},
	vmFile{path: "root/.ssh", dir: true},
	vmFile{path: "root/.ssh/id_ed25519", body: pemKey},
	vmFile{path: "tmp", dir: true},
	vmFile{path: "tmp/scratch", body: "left out by the default excludes"},
	vmFile{path: "opt", dir: true},
	vmFile{path: "opt/cache", dir: true},
	vmFile{path: "opt/cache/big", body: "left out by the test's own exclude"},
)

// fixedTime is every fixture entry's mtime, so base and VM agree where their bytes agree.
var fixedTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// writeRoot writes files under dir.
func writeRoot(t *testing.T, dir string, files []vmFile) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f.path)
		switch {
		case f.dir:
			must(t, os.MkdirAll(p, 0o755))
		case f.link != "":
			must(t, os.Symlink(f.link, p))
		case f.hard != "":
			must(t, os.Link(filepath.Join(dir, f.hard), p))
		default:
			must(t, os.WriteFile(p, []byte(f.body), 0o644))
		}
	}
	// Directories last, deepest first: writing into one moves its mtime.
	ts := []unix.Timespec{unix.NsecToTimespec(fixedTime.UnixNano()), unix.NsecToTimespec(fixedTime.UnixNano())}
	for i := len(files) - 1; i >= 0; i-- {
		p := filepath.Join(dir, files[i].path)
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
	must(t, os.Chtimes(dir, fixedTime, fixedTime))
}

// newVM writes the test VM and returns its root.
func newVM(t *testing.T, files []vmFile) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "vm")
	must(t, os.Mkdir(root, 0o755))
	writeRoot(t, root, files)
	return root
}

// baseLayerTar is a layer holding files, owned by the user running the test (so an unprivileged
// unpack and the VM agree on owners).
func baseLayerTar(t *testing.T, files []vmFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	uid, gid := os.Getuid(), os.Getgid()
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: 0o644, Uid: uid, Gid: gid, ModTime: fixedTime, Format: tar.FormatPAX}
		switch {
		case f.dir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, f.path+"/", 0o755
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		must(t, tw.WriteHeader(h))
		_, err := io.WriteString(tw, f.body)
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// newBaseLayout writes a one-layer image of files, for this machine's architecture, as an OCI
// layout, and returns the layout directory and the image.
func newBaseLayout(t *testing.T, files []vmFile, arch string) (string, v1.Image) {
	t.Helper()
	b := baseLayerTar(t, files)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, l)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	dir := filepath.Join(t.TempDir(), "base-layout")
	p, err := layout.Write(dir, empty.Index)
	must(t, err)
	must(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "12"})))
	return dir, img
}

// fakeInit stands in for vm2image-init: the runtime layer and the context carry its bytes.
func fakeInit(t *testing.T) (string, []byte) {
	t.Helper()
	body := []byte("#!/bin/sh\n# stand-in for vm2image-init\n")
	p := filepath.Join(t.TempDir(), "vm2image-init")
	must(t, os.WriteFile(p, body, 0o755))
	return p, body
}

// testOptions are a conversion of the VM at root onto the base layout, with every cache and
// scratch directory private to the test.
func testOptions(t *testing.T, root, baseDir, initPath string) Options {
	t.Helper()
	return Options{
		Source:     "dir:" + root,
		Base:       "oci:" + baseDir + ":12",
		InitBinary: initPath,
		CacheDir:   filepath.Join(t.TempDir(), "cache"),
		WorkDir:    t.TempDir(),
		Excludes:   []string{"/opt/cache/*"},
		Created:    fixedTime,
		Logf:       t.Logf,
	}
}

var hostArch = runtime.GOARCH
