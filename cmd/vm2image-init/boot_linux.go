package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/vm2image/vm2image/pkg/services"
)

// boot recreates what a VM's systemd makes at boot and an image lacks: the tmpfiles.d lines
// for /run, /var/run and /tmp of the root at root ("/" in a container), and every service's
// directories. Problems are logged and never stop the services.
func (s *supervisor) boot(root string) {
	lines, skipped := services.LoadTmpfiles(os.DirFS(root))
	for _, why := range skipped {
		s.debugf("tmpfiles: skipping %s", why)
	}
	for _, l := range lines {
		if err := applyTmpfile(root, l); err != nil {
			s.logf("tmpfiles: %s: %v", l.Origin, err)
		}
	}
	for _, svc := range s.svcs {
		s.makeDirectories(root, svc.spec)
	}
}

// debugf logs only what helps when VM2IMAGE_INIT_DEBUG is set.
func (s *supervisor) debugf(format string, args ...any) {
	if s.debug {
		s.logf(format, args...)
	}
}

func (s *supervisor) makeDirectories(root string, spec services.Service) {
	if len(spec.Directories) == 0 {
		return
	}
	uid, gid := -1, -1
	if cred, err := credential(spec); err == nil && cred != nil {
		uid, gid = int(cred.Uid), int(cred.Gid)
	}
	for _, d := range spec.Directories {
		mode, _ := strconv.ParseUint(d.Mode, 8, 32)
		p := filepath.Join(root, d.Path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			s.logf("%s: creating %s: %v", spec.Name, d.Path, err)
			continue
		}
		if err := os.Chmod(p, fs.FileMode(mode)&fs.ModePerm|unixModeBits(uint32(mode))); err != nil {
			s.logf("%s: chmod %s: %v", spec.Name, d.Path, err)
		}
		if d.Owned && uid >= 0 {
			if err := os.Lchown(p, uid, gid); err != nil {
				s.logf("%s: chown %s: %v", spec.Name, d.Path, err)
			}
		}
	}
}

// unixModeBits maps setuid, setgid and sticky bits of a numeric mode to fs.FileMode's.
func unixModeBits(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// applyTmpfile creates what one tmpfiles line names under root, without following a symlink
// out of place: d and D make a directory, f and F a file (F and f+ truncate; the argument is
// written to a new or truncated file), L a symlink (L+ replaces what is there).
func applyTmpfile(root string, l services.TmpfilesLine) error {
	p := filepath.Join(root, l.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	mode := l.Mode
	switch l.Type {
	case 'd', 'D':
		if mode == 0 {
			mode = 0o755
		}
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", l.Path)
		}
	case 'f', 'F':
		if mode == 0 {
			mode = 0o644
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		f, err := os.OpenFile(p, flags, 0o600)
		if errors.Is(err, fs.ErrExist) && (l.Type == 'F' || l.Replace) {
			f, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0)
		}
		if errors.Is(err, fs.ErrExist) {
			return nil // f: an existing file is left alone
		}
		if err != nil {
			return err
		}
		_, werr := f.WriteString(l.Arg)
		if err := f.Close(); werr != nil || err != nil {
			return errors.Join(werr, err)
		}
	case 'L':
		if l.Replace {
			if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
				_ = os.Remove(p)
			}
		}
		if err := os.Symlink(l.Arg, p); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	}
	if err := os.Chmod(p, fs.FileMode(mode)&fs.ModePerm|unixModeBits(mode)); err != nil {
		return err
	}
	uid, gid := lookupOwner(l.User, l.Group)
	return os.Lchown(p, uid, gid)
}

// lookupOwner returns the ids of a tmpfiles owner (names or numbers; "" is root), -1 for a
// name the image does not know (left unchanged).
func lookupOwner(user, group string) (int, int) {
	uid, gid := 0, 0
	if user != "" {
		uid = -1
		if n, err := strconv.Atoi(user); err == nil {
			uid = n
		} else if u, _, ok := lookupUser("/etc/passwd", user); ok {
			uid = u
		}
	}
	if group != "" {
		gid = lookupGroup("/etc/group", group)
	}
	return uid, gid
}

// lookupGroup returns a group's id from a group(5) file (a number is taken as is), or -1.
func lookupGroup(file, name string) int {
	if n, err := strconv.Atoi(name); err == nil {
		return n
	}
	gid := -1
	scanColon(file, func(f []string) bool {
		if len(f) >= 3 && f[0] == name {
			if g, err := strconv.Atoi(f[2]); err == nil {
				gid = g
			}
			return false
		}
		return true
	})
	return gid
}
