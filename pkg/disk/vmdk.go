package disk

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// vmdkMaxDescriptor bounds the embedded descriptor read.
const vmdkMaxDescriptor = 1 << 20

// checkVMDK accepts a hosted sparse VMDK (monolithicSparse or streamOptimized) whose embedded
// descriptor names one sparse extent and no parent: qemu then reads this file alone.
func checkVMDK(r io.ReaderAt, size int64) error {
	h := make([]byte, 80)
	if n, _ := r.ReadAt(h, 0); n < len(h) {
		return fmt.Errorf("%w: VMDK header cut short", ErrTruncated)
	}
	le := binary.LittleEndian
	descOff, descSize := le.Uint64(h[28:])*512, le.Uint64(h[36:])*512
	gdOff := le.Uint64(h[56:])
	if gdOff != ^uint64(0) && gdOff*512 >= uint64(size) { // ^0: stream-optimized, at the end
		return fmt.Errorf("%w: VMDK grain directory past the end of the file", ErrTruncated)
	}
	if descOff == 0 || descSize == 0 {
		return fmt.Errorf("%w: VMDK without an embedded descriptor", ErrUnsupported)
	}
	if descSize > vmdkMaxDescriptor || descOff > uint64(size) || descSize > uint64(size)-descOff {
		return fmt.Errorf("%w: VMDK descriptor past the end of the file", ErrTruncated)
	}
	desc := make([]byte, descSize)
	if _, err := r.ReadAt(desc, int64(descOff)); err != nil {
		return fmt.Errorf("%w: reading the VMDK descriptor: %v", ErrTruncated, err)
	}
	if i := bytes.IndexByte(desc, 0); i >= 0 {
		desc = desc[:i]
	}
	return CheckVMDKDescriptor(desc)
}

// CheckVMDKDescriptor checks an embedded VMDK descriptor: createType monolithicSparse or
// streamOptimized, exactly one SPARSE extent, no parent (parentCID ffffffff, no
// parentFileNameHint).
func CheckVMDKDescriptor(desc []byte) error {
	// qemu finds a key anywhere in the text (comments included): so do we, for the parent.
	if bytes.Contains(bytes.ToLower(desc), []byte("parentfilenamehint")) {
		return fmt.Errorf("%w: VMDK names a parent (parentFileNameHint)", ErrBackingFile)
	}
	var createType string
	extents := 0
	sc := bufio.NewScanner(bytes.NewReader(desc))
	sc.Buffer(make([]byte, 4096), vmdkMaxDescriptor)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "RW" || f[0] == "RDONLY" || f[0] == "NOACCESS" { // an extent, whatever its name holds
			if len(f) < 4 || f[2] != "SPARSE" {
				return fmt.Errorf("%w: VMDK extent %q is not the image's own sparse extent", ErrBackingFile, line)
			}
			extents++
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%w: VMDK descriptor line %q", ErrUnsupported, line)
		}
		key, val = strings.TrimSpace(key), strings.Trim(strings.TrimSpace(val), `"`)
		switch strings.ToLower(key) {
		case "createtype":
			createType = val
		case "parentfilenamehint":
			return fmt.Errorf("%w: VMDK parent %q", ErrBackingFile, val)
		case "parentcid":
			if !strings.EqualFold(val, "ffffffff") {
				return fmt.Errorf("%w: VMDK parent CID %s", ErrBackingFile, val)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: VMDK descriptor: %v", ErrUnsupported, err)
	}
	if createType != "monolithicSparse" && createType != "streamOptimized" {
		return fmt.Errorf("%w: VMDK createType %q (want monolithicSparse or streamOptimized)", ErrUnsupported, createType)
	}
	if extents != 1 {
		return fmt.Errorf("%w: VMDK with %d extents (want the image's own one)", ErrBackingFile, extents)
	}
	return nil
}
