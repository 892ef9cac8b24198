package convert

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vm2image/vm2image/pkg/debfile"
	"github.com/vm2image/vm2image/pkg/pacfile"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/rpmfile"
)

// A payload layer is made from the package file the build downloaded: a .deb (apt), a
// .pkg.tar.* (pacman) or an .rpm (dnf, zypper), found in the build's archive share by the
// name its installer gives it, opened by the decoder of its format and checked to be the
// package it is named for. Every format's payload goes through debfile.WritePayload: one
// implementation of the payload rules.

// payloadWriter is an opened package file: it writes its payload as a layer.
type payloadWriter interface {
	WriteLayer(w io.Writer, excludes []string, dirLinks map[string]string) (debfile.LayerInfo, error)
}

// archiveNames are the file names the installers of m give p's package file, in the order
// they are tried.
func archiveNames(m pkgmgr.Manager, p pkgmgr.Package) []string {
	switch m {
	case pkgmgr.Dpkg:
		return []string{debName(p)}
	case pkgmgr.Pacman:
		// NAME-EPOCH:VERSION-REL-ARCH as the repository names it (Arch's own files keep the
		// epoch; some repositories drop it).
		versions := []string{p.Version}
		if _, v, ok := strings.Cut(p.Version, ":"); ok {
			versions = append(versions, v)
		}
		var out []string
		for _, v := range versions {
			for _, s := range pacfile.Suffixes {
				out = append(out, p.Name+"-"+v+"-"+p.Arch+s)
			}
		}
		return out
	case pkgmgr.RPM:
		// NAME-VERSION-RELEASE.ARCH.rpm: no epoch.
		v := p.Version
		if _, rest, ok := strings.Cut(v, ":"); ok {
			v = rest
		}
		return []string{p.Name + "-" + v + "." + p.Arch + ".rpm"}
	}
	return nil
}

// archiveFile is the path of p's package file in dir, "" when dir holds none.
func archiveFile(m pkgmgr.Manager, dir string, p pkgmgr.Package) string {
	if dir == "" {
		return ""
	}
	for _, name := range archiveNames(m, p) {
		if strings.ContainsRune(name, '/') || name == ".." {
			continue // a name from the VM's database: never a path
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
			return path
		}
	}
	return ""
}

// payloadKey names the cache entry of a package file's payload layer: its format, its digest
// and what else the layer depends on (payloadParams). dpkg's keys keep their first form.
func payloadKey(m pkgmgr.Manager, sum, params string) string {
	return payloadKeyPrefix(m) + sum[:32] + "-" + params[:12]
}

// payloadKeyPrefix is what the payload keys of m's package format begin with.
func payloadKeyPrefix(m pkgmgr.Manager) string {
	if m == pkgmgr.Dpkg {
		return "payload-"
	}
	return "payload-" + string(m) + "-"
}

// openPayload opens the package file f from its start with the decoder of m, checked to be the
// package it is named for.
func openPayload(f *os.File, m pkgmgr.Manager, want pkgmgr.Package) (payloadWriter, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 1<<20)
	var name, version, arch string
	var pw payloadWriter
	switch m {
	case pkgmgr.Dpkg:
		p, err := debfile.Open(br)
		if err != nil {
			return nil, err
		}
		name, version, arch, pw = p.Name, p.Version, p.Arch, p
	case pkgmgr.Pacman:
		p, err := pacfile.Open(f.Name(), br)
		if err != nil {
			return nil, err
		}
		name, version, arch, pw = p.Name, p.Version, p.Arch, p
	case pkgmgr.RPM:
		p, err := rpmfile.Open(br)
		if err != nil {
			return nil, err
		}
		name, version, arch, pw = p.Name, p.Version, p.Arch, p
	default:
		return nil, fmt.Errorf("no payload layers for %s packages", m)
	}
	if name != want.Name || version != want.Version || arch != want.Arch {
		return nil, fmt.Errorf("%s holds %s %s %s", filepath.Base(f.Name()), name, version, arch)
	}
	return pw, nil
}
