package vmread

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/internal/rootfs"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/wire"
	"golang.org/x/sys/unix"
)

// Info reads os-release, architecture, kernel, hostname, CPUs, memory and mounts. Every VM file
// is read inside the root with a size bound; one that cannot be read is reported in Problems.
func (a *Reader) Info(ctx context.Context) (*wire.Info, error) {
	root := a.opts.Root
	info := &wire.Info{Root: root, AgentVersion: Version, CPUs: runtime.NumCPU()}
	r, err := rootfs.Open(root)
	if err != nil {
		return nil, fmt.Errorf("reading system information: %w", err)
	}
	defer r.Close()
	info.OS, info.Problems = readOSRelease(r)
	info.Arch = detectArch(r)
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		info.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if root == "/" {
		info.Hostname = unix.ByteSliceToString(uts.Nodename[:])
	} else if h, err := readHostname(r); err != nil {
		info.Problems = append(info.Problems, wire.Problem{Path: "/etc/hostname", Err: err.Error()})
	} else {
		info.Hostname = h
	}
	for _, p := range info.Problems {
		a.opts.Logf("%s: %s", p.Path, p.Err)
	}
	info.MemoryBytes = memTotal(filepath.Join(a.opts.ProcDir, "meminfo"))
	info.Mounts = a.mounts()
	return info, ctx.Err()
}

// maxHostname bounds a hostname taken from a VM file (a DNS name has at most 253 bytes).
const maxHostname = 253

// readHostname reads the first line of /etc/hostname; a missing file is no hostname.
func readHostname(r *rootfs.Root) (string, error) {
	b, err := r.ReadFile("etc/hostname", rootfs.ConfigLimit)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	line = strings.TrimSpace(line)
	if len(line) > maxHostname || strings.ContainsFunc(line, func(c rune) bool { return c <= ' ' || c > '~' }) {
		return "", fmt.Errorf("reading /etc/hostname: not a hostname (%d bytes)", len(line))
	}
	return line, nil
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

// readOSRelease reads etc/os-release, else usr/lib/os-release, as os-release(5) says; a file
// that exists but cannot be read is a problem.
func readOSRelease(r *rootfs.Root) (wire.OSRelease, []wire.Problem) {
	var probs []wire.Problem
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := r.ReadFile(p, rootfs.ConfigLimit)
		if err == nil {
			return ParseOSRelease(b), probs
		}
		if !errors.Is(err, fs.ErrNotExist) {
			probs = append(probs, wire.Problem{Path: "/" + p, Err: err.Error()})
		}
	}
	return wire.OSRelease{ID: "linux"}, probs
}

var elfArch = map[elf.Machine]string{
	elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
	elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x", elf.EM_RISCV: "riscv64", elf.EM_MIPS: "mips",
}

// detectArch reads the ELF header of the root's shell: the VM's architecture, which may differ
// from the agent's when serving a directory.
func detectArch(r *rootfs.Root) string {
	for _, p := range []string{"bin/sh", "usr/bin/sh", "bin/busybox", "usr/bin/env"} {
		if a := elfArchOf(r, p); a != "" {
			return a
		}
	}
	return runtime.GOARCH
}

// elfArchOf reads only the ELF identification and e_machine of name (20 bytes).
func elfArchOf(r *rootfs.Root, name string) string {
	f, err := r.Open(name)
	if err != nil {
		return ""
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || string(h[:4]) != elf.ELFMAG {
		return ""
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(h[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	m := elf.Machine(bo.Uint16(h[18:]))
	a := elfArch[m]
	if m == elf.EM_PPC64 && bo == binary.BigEndian {
		a = "ppc64"
	}
	return a
}

func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, rootfs.ConfigLimit))
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

// maxMountinfo bounds the mount table read (the kernel's, or a test's file).
const maxMountinfo = 64 << 20

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
	ms, err := fswalk.ParseMountinfo(io.LimitReader(f, maxMountinfo))
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
