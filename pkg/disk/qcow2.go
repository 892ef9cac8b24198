package disk

import (
	"encoding/binary"
	"fmt"
	"io"
)

// qcow2 header fields (big-endian), from the QCOW2 specification.
const (
	qcowExtDataFile   = 0x44415441 // header extension: external data file name
	qcowIncompatData  = 1 << 2     // incompatible feature: external data file
	qcowL2Entry       = 8
	qcowMaxTableBytes = 256 << 20 // L1 + L2 tables read to check them, at most
)

// checkQCOW2 refuses a qcow2 that names another file (backing file, external data file), that
// is encrypted, or whose tables point past the end of the file (a truncated image).
func checkQCOW2(r io.ReaderAt, size int64) error {
	h := make([]byte, 104)
	if n, _ := r.ReadAt(h, 0); n < 72 {
		return fmt.Errorf("%w: qcow2 header cut short", ErrTruncated)
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return fmt.Errorf("%w: qcow2 version %d", ErrUnsupported, version)
	}
	if be.Uint64(h[8:]) != 0 || be.Uint32(h[16:]) != 0 {
		return fmt.Errorf("%w: qcow2 backing file", ErrBackingFile)
	}
	clusterBits := be.Uint32(h[20:])
	if clusterBits < 9 || clusterBits > 21 {
		return fmt.Errorf("%w: qcow2 cluster bits %d", ErrTruncated, clusterBits)
	}
	if be.Uint32(h[32:]) != 0 {
		return fmt.Errorf("%w: qcow2 encryption", ErrEncrypted)
	}
	headerLen := uint64(72)
	if version == 3 {
		if be.Uint64(h[72:])&qcowIncompatData != 0 {
			return fmt.Errorf("%w: qcow2 external data file", ErrBackingFile)
		}
		headerLen = uint64(be.Uint32(h[100:]))
		if headerLen < 104 || headerLen > 1<<clusterBits {
			return fmt.Errorf("%w: qcow2 header length %d", ErrTruncated, headerLen)
		}
	}
	if err := checkQCOW2Extensions(r, size, headerLen, uint64(1)<<clusterBits); err != nil {
		return err
	}
	l1Size, l1Off := uint64(be.Uint32(h[36:])), be.Uint64(h[40:])
	return checkQCOW2Tables(r, size, clusterBits, l1Off, l1Size)
}

// checkQCOW2Extensions walks the header extensions (in the first cluster) for an external data
// file name.
func checkQCOW2Extensions(r io.ReaderAt, size int64, off, clusterSize uint64) error {
	be := binary.BigEndian
	for off+8 <= clusterSize {
		var e [8]byte
		if n, _ := r.ReadAt(e[:], int64(off)); n < 8 {
			return fmt.Errorf("%w: qcow2 header extensions cut short", ErrTruncated)
		}
		typ, l := be.Uint32(e[:]), uint64(be.Uint32(e[4:]))
		if typ == 0 {
			return nil
		}
		if typ == qcowExtDataFile {
			return fmt.Errorf("%w: qcow2 external data file", ErrBackingFile)
		}
		off += 8 + (l+7)/8*8
	}
	return nil
}

// checkQCOW2Tables reads the L1 table and every L2 table it names, and checks that each
// points inside the file.
func checkQCOW2Tables(r io.ReaderAt, size int64, clusterBits uint32, l1Off, l1Size uint64) error {
	clusterSize := uint64(1) << clusterBits
	fsize := uint64(size)
	if l1Size*qcowL2Entry > qcowMaxTableBytes || l1Off > fsize || l1Size*qcowL2Entry > fsize-l1Off {
		return fmt.Errorf("%w: qcow2 L1 table (%d entries at %d) past the end of the %d-byte file", ErrTruncated, l1Size, l1Off, fsize)
	}
	l1 := make([]byte, l1Size*qcowL2Entry)
	if _, err := r.ReadAt(l1, int64(l1Off)); err != nil && l1Size > 0 {
		return fmt.Errorf("%w: reading the qcow2 L1 table: %v", ErrTruncated, err)
	}
	l2 := make([]byte, clusterSize)
	read := uint64(len(l1))
	for i := uint64(0); i < l1Size; i++ {
		off := binary.BigEndian.Uint64(l1[i*8:]) & 0x00fffffffffffe00
		if off == 0 {
			continue
		}
		if read += clusterSize; read > qcowMaxTableBytes {
			return fmt.Errorf("%w: qcow2 tables larger than %d bytes", ErrUnsupported, qcowMaxTableBytes)
		}
		if off > fsize || clusterSize > fsize-off {
			return fmt.Errorf("%w: qcow2 L2 table at %d past the end of the %d-byte file", ErrTruncated, off, fsize)
		}
		if _, err := r.ReadAt(l2, int64(off)); err != nil {
			return fmt.Errorf("%w: reading a qcow2 L2 table: %v", ErrTruncated, err)
		}
		if err := checkQCOW2L2(l2, clusterBits, fsize); err != nil {
			return err
		}
	}
	return nil
}

// checkQCOW2L2 checks that every data cluster of one L2 table starts inside the file.
func checkQCOW2L2(l2 []byte, clusterBits uint32, fsize uint64) error {
	for j := 0; j+8 <= len(l2); j += 8 {
		e := binary.BigEndian.Uint64(l2[j:])
		var off uint64
		if e&(1<<62) != 0 { // compressed: the host offset is in the low 62-(clusterBits-8) bits
			off = e & (1<<(62-(clusterBits-8)) - 1)
		} else {
			off = e & 0x00fffffffffffe00
		}
		if off >= fsize {
			return fmt.Errorf("%w: qcow2 data cluster at %d past the end of the %d-byte file", ErrTruncated, off, fsize)
		}
	}
	return nil
}
