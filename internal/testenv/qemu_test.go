package testenv

import "testing"

// TestSystemdVMDiskBuilds builds (or finds) the cached systemd VM disk and its kernel.
func TestSystemdVMDiskBuilds(t *testing.T) {
	RequireRoot(t)
	disk, kernel, initrd := SystemdVMDisk(t, "/bin/true")
	if disk == "" || kernel == "" || initrd == "" {
		t.Fatal("no disk, kernel or initrd")
	}
}
