package archive

import (
	"archive/tar"
	"errors"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// take moves the donor's regular file rel to name (just made free by removeExisting) when it
// has the entry's size and modification second, and gives it exactly the entry's extended
// attributes. taken false (nothing changed) sends the caller to the stream's copy; an error
// is one of a file already moved.
func (a *applier) take(name, rel string, hdr *tar.Header) (taken bool, err error) {
	fi, err := a.donor.Lstat(rel)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != hdr.Size || fi.ModTime().Unix() != hdr.ModTime.Unix() {
		return false, nil
	}
	from, err := a.donor.Open(path.Dir(rel))
	if err != nil {
		return false, nil
	}
	defer from.Close()
	err = a.inParent(name, func(to *os.File, base string) error {
		if err := unix.Renameat2(int(from.Fd()), path.Base(rel), int(to.Fd()), base, unix.RENAME_NOREPLACE); err != nil {
			if errors.Is(err, unix.EXDEV) {
				a.donor.Close()
				a.donor = nil // another filesystem: every file comes from the stream
			}
			return errNotTaken
		}
		taken = true
		return dropXattrs("/proc/self/fd/"+strconv.Itoa(int(to.Fd()))+"/"+base, hdr)
	})
	if !taken {
		return false, nil
	}
	return true, err
}

var errNotTaken = errors.New("not taken")

// dropXattrs removes the extended attributes of p the entry does not carry (an overlay's own,
// trusted.overlay.*, on its upper files).
func dropXattrs(p string, hdr *tar.Header) error {
	n, err := unix.Llistxattr(p, nil)
	if err != nil || n == 0 {
		return nil // none, or a filesystem without them
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(p, buf); err != nil {
		return err
	}
	for _, attr := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if _, keep := hdr.PAXRecords[PAXXattrPrefix+attr]; attr == "" || keep {
			continue
		}
		if err := unix.Lremovexattr(p, attr); err != nil {
			return err
		}
	}
	return nil
}
