package vmread

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/wire"
	"golang.org/x/sys/unix"
)

// Info reads os-release, architecture, kernel, hostname, CPUs, memory and mounts.
func (a *Reader) Info(ctx context.Context) (*wire.Info, error) {
	root := a.opts.Root
	info := &wire.Info{Root: root, AgentVersion: Version, CPUs: runtime.NumCPU()}
	info.OS = readOSRelease(root)
	info.Arch = detectArch(root)
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if root == "/" {
		info.Hostname, _ = os.Hostname()
	} else if b, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err == nil {
		info.Hostname = strings.TrimSpace(string(b))
	}
	info.MemoryBytes = memTotal(filepath.Join(a.opts.ProcDir, "meminfo"))
	info.Mounts = a.mounts()
	return info, ctx.Err()
}

// ParseOSRelease parses an os-release file (shell-like KEY=value lines, optionally quoted).
func ParseOSRelease(b []byte) wire.OSRelease {
	f := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") || k == "" {
			continue
		}
		f[k] = unquote(v)
	}
	r := wire.OSRelease{ID: f["ID"], VersionID: f["VERSION_ID"], Codename: f["VERSION_CODENAME"], PrettyName: f["PRETTY_NAME"], Fields: f}
	if r.ID == "" {
		r.ID = "linux"
	}
	r.IDLike = strings.Fields(f["ID_LIKE"])
	return r
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		q := v[0]
		v = v[1 : len(v)-1]
		if q == '"' {
			r := strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`")
			v = r.Replace(v)
		}
	}
	return v
}

func readOSRelease(root string) wire.OSRelease {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if b, err := readInRoot(root, p); err == nil {
			return ParseOSRelease(b)
		}
	}
	return wire.OSRelease{ID: "linux"}
}

// readInRoot reads a file under root without following a symlink out of it.
func readInRoot(root, name string) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadFile(name)
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
	elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64", elf.EM_MIPS: "mips",
}

// detectArch reads the ELF header of the root's shell: the VM's architecture, which may differ
// from the agent's when serving a directory.
func detectArch(root string) string {
	r, err := os.OpenRoot(root)
	if err == nil {
		defer r.Close()
		for _, p := range []string{"bin/sh", "usr/bin/sh", "bin/busybox", "usr/bin/env"} {
			if a := elfArchOf(r, p); a != "" {
				return a
			}
		}
	}
	return runtime.GOARCH
}

func elfArchOf(r *os.Root, name string) string {
	// Follow symlinks inside the root only (bin -> usr/bin on merged-/usr systems).
	for range 8 {
		target, err := r.Readlink(name)
		if err != nil {
			break
		}
		if path.IsAbs(target) {
			name = strings.TrimPrefix(path.Clean(target), "/")
		} else {
			name = path.Join(path.Dir(name), target)
		}
	}
	f, err := r.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return ""
	}
	a := elfArch[ef.Machine]
	if ef.Machine == elf.EM_PPC64 && ef.ByteOrder.String() == "BigEndian" {
		a = "ppc64"
	}
	return a
}

func memTotal(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func (a *Reader) mounts() []wire.Mount {
	p := a.opts.MountinfoPath
	if p == "" {
		p = "/proc/self/mountinfo"
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	ms, err := fswalk.ParseMountinfo(f)
	if err != nil {
		return nil
	}
	var out []wire.Mount
	root := a.opts.Root
	for _, m := range ms {
		rel, ok := underRoot(root, m.MountPoint)
		if !ok {
			continue
		}
		out = append(out, wire.Mount{Path: rel, FSType: m.FSType, Source: m.Source})
	}
	return out
}

// underRoot returns mp as a path from root ("/" for the root itself) when it is inside root.
func underRoot(root, mp string) (string, bool) {
	if root == "/" {
		return mp, true
	}
	if mp == root {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(mp, root+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}
