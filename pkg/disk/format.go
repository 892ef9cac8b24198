package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Format is a disk image container format, detected by content.
type Format string

// The formats Sniff knows. The names are qemu's, so they pass to qemu and libguestfs as given.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
	VMDK  Format = "vmdk"
	VHD   Format = "vpc"
	VHDX  Format = "vhdx"
	OVA   Format = "ova" // a tar holding an OVF descriptor and its disks
)

// Errors that name what is wrong with an image; test with errors.Is.
var (
	ErrTruncated      = errors.New("image is truncated or corrupt")
	ErrBackingFile    = errors.New("image refers to another file (backing file, parent or external extent), which is refused")
	ErrEncrypted      = errors.New("image or volume is encrypted")
	ErrUnsupported    = errors.New("unsupported image")
	ErrNoOS           = errors.New("no operating system found on the disk")
	ErrUnknownFS      = errors.New("unknown filesystem")
	ErrSeveralRoots   = errors.New("several operating systems on the disk: choose one with --disk-root")
	ErrPartitionTable = errors.New("bad partition table")
)

// luksMagic starts a LUKS header (version 1 and 2).
var luksMagic = []byte{'L', 'U', 'K', 'S', 0xba, 0xbe}

// Sniff detects the format of the image r of size bytes and checks that qemu may open it with
// no file but this one: a backing file, a parent disk, an external data file or an extent
// outside the image is refused (ErrBackingFile), an encrypted image too (ErrEncrypted), and
// tables pointing past the end of the file (ErrTruncated).
func Sniff(r io.ReaderAt, size int64) (Format, error) {
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the image header: %w", err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		return QCOW2, checkQCOW2(r, size)
	case bytes.HasPrefix(head, []byte("KDMV")):
		return VMDK, checkVMDK(r, size)
	case bytes.HasPrefix(head, []byte("COWD")):
		return VMDK, fmt.Errorf("%w: VMware ESX COWD sparse extents (a snapshot of another disk)", ErrBackingFile)
	case isVMDKDescriptor(head):
		return VMDK, fmt.Errorf("%w: a VMDK descriptor file names its extents as other files; give the monolithic or stream-optimized .vmdk", ErrBackingFile)
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return VHDX, checkVHDX(size)
	case bytes.HasPrefix(head, []byte("conectix")):
		return VHD, checkVHD(head)
	case bytes.HasPrefix(head, luksMagic):
		return Raw, fmt.Errorf("%w: the whole disk is a LUKS volume", ErrEncrypted)
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		return OVA, nil
	}
	if size >= 512 {
		foot := make([]byte, 512)
		if _, err := r.ReadAt(foot, size-512); err == nil && bytes.HasPrefix(foot, []byte("conectix")) {
			return VHD, checkVHD(foot)
		}
	}
	if size < 512 {
		return Raw, fmt.Errorf("%w: %d bytes is too small for a disk", ErrTruncated, size)
	}
	return Raw, nil
}

// isVMDKDescriptor reports whether head looks like a VMDK text descriptor, which qemu would
// follow to the files it names.
func isVMDKDescriptor(head []byte) bool {
	return bytes.HasPrefix(head, []byte("# Disk DescriptorFile")) || bytes.Contains(head, []byte("createType="))
}

// checkVHD refuses differencing VHDs (their parent is another file).
func checkVHD(footer []byte) error {
	if len(footer) < 64 {
		return fmt.Errorf("%w: short VHD footer", ErrTruncated)
	}
	switch t := binary.BigEndian.Uint32(footer[60:]); t {
	case 2, 3: // fixed, dynamic
		return nil
	case 4:
		return fmt.Errorf("%w: differencing VHD (its parent is another file)", ErrBackingFile)
	default:
		return fmt.Errorf("%w: VHD disk type %d", ErrUnsupported, t)
	}
}

// checkVHDX wants the 1 MiB header region at least.
func checkVHDX(size int64) error {
	if size < 1<<20 {
		return fmt.Errorf("%w: VHDX smaller than its header region", ErrTruncated)
	}
	return nil
}
