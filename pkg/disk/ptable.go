package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	sectorSize    = 512
	maxPartitions = 128
	maxLogical    = 64 // logical partitions followed in an extended partition's chain
)

// Partition is one entry of a partition table, in bytes from the start of the disk.
type Partition struct {
	Number int   // 1-based, as Linux numbers them (sda1, sda5 for the first logical)
	Start  int64 // bytes
	Size   int64 // bytes
	Type   string
}

// Partitions reads the partition table (GPT, or MBR with logical partitions) of the raw disk r
// of size bytes. A disk with no table returns nil and no error (a filesystem on the whole
// disk); a table with entries outside the disk, overlapping or cut short is ErrPartitionTable.
func Partitions(r io.ReaderAt, size int64) ([]Partition, error) {
	mbr := make([]byte, sectorSize)
	if n, _ := r.ReadAt(mbr, 0); n < sectorSize || mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, nil
	}
	if bytes.Equal(mbr[3:11], []byte("EXFAT   ")) || bytes.Equal(mbr[3:7], []byte("NTFS")) || mbr[0] == 0xeb && mbr[2] == 0x90 {
		return nil, nil // a boot sector of a filesystem, not a table
	}
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		typ, start, n := e[4], int64(binary.LittleEndian.Uint32(e[8:])), int64(binary.LittleEndian.Uint32(e[12:]))
		switch {
		case typ == 0:
			continue
		case typ == 0xee:
			return gptPartitions(r, size)
		case typ == 0x05 || typ == 0x0f || typ == 0x85:
			logical, err := logicalPartitions(r, size, start)
			if err != nil {
				return nil, err
			}
			parts = append(parts, logical...)
			continue
		}
		parts = append(parts, Partition{Number: i + 1, Start: start * sectorSize, Size: n * sectorSize, Type: fmt.Sprintf("0x%02x", typ)})
	}
	return parts, checkPartitions(parts, size)
}

// logicalPartitions follows the chain of extended boot records starting at sector ext.
func logicalPartitions(r io.ReaderAt, size, ext int64) ([]Partition, error) {
	var parts []Partition
	ebr := make([]byte, sectorSize)
	next := int64(0)
	for i := 0; ; i++ {
		if i >= maxLogical {
			return nil, fmt.Errorf("%w: more than %d logical partitions (a loop?)", ErrPartitionTable, maxLogical)
		}
		at := (ext + next) * sectorSize
		if at < 0 || at+sectorSize > size {
			return nil, fmt.Errorf("%w: extended boot record past the end of the disk", ErrPartitionTable)
		}
		if _, err := r.ReadAt(ebr, at); err != nil || ebr[510] != 0x55 || ebr[511] != 0xaa {
			return nil, fmt.Errorf("%w: bad extended boot record at sector %d", ErrPartitionTable, ext+next)
		}
		e := ebr[446:462]
		if e[4] != 0 {
			start := at + int64(binary.LittleEndian.Uint32(e[8:]))*sectorSize
			parts = append(parts, Partition{Number: 5 + i, Start: start, Size: int64(binary.LittleEndian.Uint32(e[12:])) * sectorSize, Type: fmt.Sprintf("0x%02x", e[4])})
		}
		l := ebr[462:478]
		if l[4] == 0 {
			return parts, nil
		}
		next = int64(binary.LittleEndian.Uint32(l[8:]))
	}
}

// gptPartitions reads a GUID partition table: header at LBA 1 with its CRC checked, entries
// with theirs.
func gptPartitions(r io.ReaderAt, size int64) ([]Partition, error) {
	h := make([]byte, sectorSize)
	if _, err := r.ReadAt(h, sectorSize); err != nil || !bytes.Equal(h[:8], []byte("EFI PART")) {
		return nil, fmt.Errorf("%w: protective MBR without a GPT header", ErrPartitionTable)
	}
	le := binary.LittleEndian
	hsize := le.Uint32(h[12:])
	if hsize < 92 || hsize > sectorSize {
		return nil, fmt.Errorf("%w: GPT header size %d", ErrPartitionTable, hsize)
	}
	want := le.Uint32(h[16:])
	hc := bytes.Clone(h[:hsize])
	copy(hc[16:20], []byte{0, 0, 0, 0})
	if crc32.ChecksumIEEE(hc) != want {
		return nil, fmt.Errorf("%w: GPT header checksum mismatch", ErrPartitionTable)
	}
	entLBA, count, esize := int64(le.Uint64(h[72:])), le.Uint32(h[80:]), le.Uint32(h[84:])
	if count > maxPartitions || esize < 128 || esize > 4096 || entLBA < 2 || entLBA > size/sectorSize {
		return nil, fmt.Errorf("%w: GPT entries (%d of %d bytes at LBA %d)", ErrPartitionTable, count, esize, entLBA)
	}
	ents := make([]byte, int64(count)*int64(esize))
	if _, err := r.ReadAt(ents, entLBA*sectorSize); err != nil {
		return nil, fmt.Errorf("%w: reading GPT entries: %v", ErrPartitionTable, err)
	}
	if crc32.ChecksumIEEE(ents) != le.Uint32(h[88:]) {
		return nil, fmt.Errorf("%w: GPT entries checksum mismatch", ErrPartitionTable)
	}
	var parts []Partition
	for i := uint32(0); i < count; i++ {
		e := ents[i*esize : (i+1)*esize]
		if bytes.Equal(e[:16], make([]byte, 16)) {
			continue
		}
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		if first <= 0 || last < first || last >= size/sectorSize {
			return nil, fmt.Errorf("%w: GPT partition %d spans sectors %d-%d of %d", ErrPartitionTable, i+1, first, last, size/sectorSize)
		}
		parts = append(parts, Partition{Number: int(i) + 1, Start: first * sectorSize, Size: (last - first + 1) * sectorSize, Type: guidString(e[:16])})
	}
	return parts, checkPartitions(parts, size)
}

// checkPartitions wants every partition inside the disk, non-empty, and none overlapping.
func checkPartitions(parts []Partition, size int64) error {
	for i, p := range parts {
		if p.Start <= 0 || p.Size <= 0 || p.Start > size || p.Size > size-p.Start {
			return fmt.Errorf("%w: partition %d (bytes %d+%d) outside the %d-byte disk", ErrPartitionTable, p.Number, p.Start, p.Size, size)
		}
		for _, q := range parts[:i] {
			if p.Start < q.Start+q.Size && q.Start < p.Start+p.Size {
				return fmt.Errorf("%w: partitions %d and %d overlap", ErrPartitionTable, q.Number, p.Number)
			}
		}
	}
	return nil
}

// guidString formats a GPT GUID (mixed-endian) as text.
func guidString(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:]), b[8:10], b[10:16])
}
