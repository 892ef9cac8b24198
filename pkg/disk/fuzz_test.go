package disk

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzSniff: format detection and the qcow2, VMDK and VHD checks on arbitrary bytes.
func FuzzSniff(f *testing.F) {
	f.Add(qcow2Header(false, 0))
	f.Add(qcow2Header(true, 0))
	f.Add([]byte("KDMV\x01\x00\x00\x00"))
	f.Add([]byte("# Disk DescriptorFile\ncreateType=\"monolithicSparse\"\nRW 1 SPARSE \"a\"\n"))
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, b []byte) {
		Sniff(bytes.NewReader(b), int64(len(b)))
	})
}

// FuzzVMDKDescriptor: whatever it accepts names exactly one sparse extent and no parent.
func FuzzVMDKDescriptor(f *testing.F) {
	f.Add([]byte("createType=\"streamOptimized\"\nRW 2048 SPARSE \"x.vmdk\"\n"))
	f.Add([]byte("createType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/shadow\" 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckVMDKDescriptor(b) != nil {
			return
		}
		if bytes.Contains(bytes.ToLower(b), []byte("parentfilenamehint")) {
			t.Errorf("accepted a parent: %q", b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "RW" && (len(f) < 3 || f[2] != "SPARSE") {
				t.Errorf("accepted the extent %q", l)
			}
		}
	})
}

// FuzzPartitions: MBR and GPT parsing; every partition returned lies inside the disk.
func FuzzPartitions(f *testing.F) {
	f.Add(gptDisk(64, [2]uint64{34, 40}))
	mbr := make([]byte, 4096)
	mbr[510], mbr[511] = 0x55, 0xaa
	copy(mbr[446:], []byte{0x80, 0, 0, 0, 0x05, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0})
	f.Add(mbr)
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := Partitions(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, p := range parts {
			if p.Start <= 0 || p.Size <= 0 || p.Start+p.Size > int64(len(b)) {
				t.Errorf("partition %+v outside the %d-byte disk", p, len(b))
			}
		}
	})
}

// FuzzParseFstab: every mount point returned is absolute, clean and plain.
func FuzzParseFstab(f *testing.F) {
	f.Add([]byte("UUID=a / ext4 defaults 0 1\nLABEL=b /var xfs defaults 0 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range ParseFstab(b) {
			if !isSafeMount(e.Point) {
				t.Errorf("unsafe mount point %q", e.Point)
			}
		}
	})
}

// FuzzExtractOVA: OVA (tar + OVF XML) reading never panics.
func FuzzExtractOVA(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	ovf := `<Envelope><References><File id="f" href="d.vmdk"/></References><DiskSection><Disk fileRef="f"/></DiskSection></Envelope>`
	tw.WriteHeader(&tar.Header{Name: "x.ovf", Mode: 0o644, Size: int64(len(ovf)), Typeflag: tar.TypeReg})
	tw.Write([]byte(ovf))
	tw.WriteHeader(&tar.Header{Name: "d.vmdk", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("abc"))
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		ExtractOVA(bytes.NewReader(b), io.Discard)
	})
}
