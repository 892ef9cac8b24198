package disk

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// qcow2Header builds a version 3 qcow2 header with 64 KiB clusters and an empty L1 table.
func qcow2Header(backing bool, crypt uint32) []byte {
	b := make([]byte, 3<<16)
	copy(b, "QFI\xfb")
	be := binary.BigEndian
	be.PutUint32(b[4:], 3)
	if backing {
		be.PutUint64(b[8:], 512)
		be.PutUint32(b[16:], 10)
		copy(b[512:], "/etc/shadow")
	}
	be.PutUint32(b[20:], 16)
	be.PutUint64(b[24:], 1<<30)
	be.PutUint32(b[32:], crypt)
	be.PutUint32(b[36:], 1)
	be.PutUint64(b[40:], 1<<16)
	be.PutUint32(b[100:], 104)
	return b
}

func TestSniff(t *testing.T) {
	vhd := make([]byte, 4096)
	copy(vhd[4096-512:], "conectix")
	binary.BigEndian.PutUint32(vhd[4096-512+60:], 4)
	tarBuf := &bytes.Buffer{}
	tw := tar.NewWriter(tarBuf)
	tw.WriteHeader(&tar.Header{Name: "vm.ovf", Mode: 0o644, Size: 0})
	tw.Close()
	cut := qcow2Header(false, 0)
	binary.BigEndian.PutUint64(cut[1<<16:], 5<<16) // L2 table past the end
	for _, c := range []struct {
		name   string
		data   []byte
		format Format
		err    error
	}{
		{"raw", make([]byte, 4096), Raw, nil},
		{"tiny", make([]byte, 10), Raw, ErrTruncated},
		{"qcow2", qcow2Header(false, 0), QCOW2, nil},
		{"qcow2 backing", qcow2Header(true, 0), QCOW2, ErrBackingFile},
		{"qcow2 encrypted", qcow2Header(false, 2), QCOW2, ErrEncrypted},
		{"qcow2 cut", cut, QCOW2, ErrTruncated},
		{"qcow2 header only", qcow2Header(false, 0)[:50], QCOW2, ErrTruncated},
		{"vmdk descriptor", []byte("# Disk DescriptorFile\ncreateType=\"monolithicFlat\"\nRW 1 FLAT \"/etc/shadow\" 0\n"), VMDK, ErrBackingFile},
		{"differencing vhd", vhd, VHD, ErrBackingFile},
		{"luks", append([]byte("LUKS\xba\xbe\x00\x01"), make([]byte, 600)...), Raw, ErrEncrypted},
		{"ova", tarBuf.Bytes(), OVA, nil},
	} {
		f, err := Sniff(bytes.NewReader(c.data), int64(len(c.data)))
		if f != c.format || (c.err == nil) != (err == nil) || c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("%s: got %s, %v; want %s, %v", c.name, f, err, c.format, c.err)
		}
	}
}

func TestCheckVMDKDescriptor(t *testing.T) {
	good := "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\nRW 2048 SPARSE \"x.vmdk\"\nddb.a = \"b\"\n"
	if err := CheckVMDKDescriptor([]byte(good)); err != nil {
		t.Fatalf("a plain stream-optimized descriptor: %v", err)
	}
	for name, d := range map[string]string{
		"flat extent":       strings.Replace(good, "SPARSE \"x.vmdk\"", "FLAT \"/etc/shadow\" 0", 1),
		"extent with =":     strings.Replace(good, "SPARSE \"x.vmdk\"", "FLAT \"/tmp/a=b\" 0", 1),
		"second extent":     good + "RW 2048 SPARSE \"/etc/shadow\"\n",
		"parent":            good + "parentFileNameHint=\"/etc/shadow\"\n",
		"parent in comment": good + "# parentFileNameHint=\"/etc/shadow\"\n",
		"parent CID":        strings.Replace(good, "parentCID=ffffffff", "parentCID=1234", 1),
		"monolithicFlat":    strings.Replace(good, "streamOptimized", "monolithicFlat", 1),
		"no extent":         strings.Replace(good, "RW 2048 SPARSE \"x.vmdk\"\n", "", 1),
		"garbage line":      good + "what is this\n",
	} {
		if err := CheckVMDKDescriptor([]byte(d)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// gptDisk builds a GPT disk image of sectors with the given partitions (first, last LBA).
func gptDisk(sectors int64, parts ...[2]uint64) []byte {
	b := make([]byte, sectors*512)
	b[510], b[511] = 0x55, 0xaa
	b[446+4] = 0xee
	le := binary.LittleEndian
	ents := b[1024 : 1024+128*128]
	for i, p := range parts {
		e := ents[i*128:]
		copy(e, "0123456789abcdef")
		le.PutUint64(e[32:], p[0])
		le.PutUint64(e[40:], p[1])
	}
	h := b[512:1024]
	copy(h, "EFI PART")
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], 128)
	le.PutUint32(h[84:], 128)
	le.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return b
}

func TestPartitions(t *testing.T) {
	d := gptDisk(4096, [2]uint64{2048, 3071}, [2]uint64{3072, 4000})
	parts, err := Partitions(bytes.NewReader(d), int64(len(d)))
	if err != nil || len(parts) != 2 || parts[1].Start != 3072*512 || parts[1].Size != 929*512 || parts[1].Number != 2 {
		t.Fatalf("gpt: %+v, %v", parts, err)
	}
	for name, bad := range map[string][]byte{
		"past the end": gptDisk(4096, [2]uint64{2048, 9000}),
		"overlap":      gptDisk(4096, [2]uint64{2048, 3071}, [2]uint64{3000, 4000}),
		"bad crc":      func() []byte { b := gptDisk(4096, [2]uint64{2048, 3071}); b[1024+40]++; return b }(),
	} {
		if _, err := Partitions(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, ErrPartitionTable) {
			t.Errorf("%s: %v, want ErrPartitionTable", name, err)
		}
	}
	if parts, err := Partitions(bytes.NewReader(make([]byte, 4096)), 4096); parts != nil || err != nil {
		t.Errorf("no table: %v %v", parts, err)
	}
}

func TestParseFstab(t *testing.T) {
	got := ParseFstab([]byte("# c\nUUID=a / ext4 defaults 0 1\n/dev/sdb1 /var/lib xfs defaults 0 2\nLABEL=v /var ext4 defaults\n" +
		"/dev/sda3 none swap sw\nproc /proc proc defaults\n/x /y none bind\nUUID=b /home ext4 noauto\nUUID=c /../etc ext4 defaults\nUUID=d /a\\040b ext4 defaults\n"))
	var points []string
	for _, e := range got {
		points = append(points, e.Point)
	}
	if strings.Join(points, " ") != "/ /var /var/lib" {
		t.Errorf("mount points %v, want / /var /var/lib", points)
	}
}

func TestExtractOVA(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	ovf := `<Envelope><References><File id="f1" href="../../etc/d2.vmdk"/><File id="f0" href="d1.vmdk"/></References><DiskSection><Disk fileRef="f1"/></DiskSection></Envelope>`
	for _, m := range []struct{ name, body string }{{"x.ovf", ovf}, {"d1.vmdk", "one"}, {"d2.vmdk", "two"}} {
		tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(m.body))
	}
	tw.Close()
	var out bytes.Buffer
	name, err := ExtractOVA(bytes.NewReader(buf.Bytes()), &out)
	if err != nil || name != "d2.vmdk" || out.String() != "two" {
		t.Errorf("got %q %q %v, want the OVF's disk d2.vmdk", name, out.String(), err)
	}
}
