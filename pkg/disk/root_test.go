package disk

import (
	"errors"
	"strings"
	"testing"
)

func TestChooseRoot(t *testing.T) {
	fss := map[string]string{"/dev/sda1": "crypto_LUKS", "/dev/sda2": "unknown", "/dev/sda3": "ext4"}
	order := []string{"/dev/sda1", "/dev/sda2", "/dev/sda3"}
	if r, err := chooseRoot([]string{"/dev/sda3"}, "", fss, order); r != "/dev/sda3" || err != nil {
		t.Errorf("one root: %q %v", r, err)
	}
	if _, err := chooseRoot([]string{"/dev/sda2", "/dev/sda3"}, "", fss, order); !errors.Is(err, ErrSeveralRoots) {
		t.Errorf("two roots: %v", err)
	}
	if r, err := chooseRoot([]string{"/dev/sda2", "/dev/sda3"}, "/dev/sda2", fss, order); r != "/dev/sda2" || err != nil {
		t.Errorf("--disk-root: %q %v", r, err)
	}
	if _, err := chooseRoot([]string{"/dev/sda2"}, "/dev/sdb9", fss, order); !errors.Is(err, ErrNoOS) {
		t.Errorf("--disk-root not found: %v", err)
	}
	if _, err := chooseRoot([]string{"/dev/sda1\n/dev/evil"}, "", fss, order); !errors.Is(err, ErrNoOS) {
		t.Errorf("a device name with a newline was taken: %v", err)
	}
	for _, dev := range []string{"/dev/vg/../../etc/shadow", "/dev/mapper/..", "/dev//vg/root"} {
		if _, err := chooseRoot([]string{dev}, "", fss, order); !errors.Is(err, ErrNoOS) {
			t.Errorf("a device name with a path trick %q was taken: %v", dev, err)
		}
	}
	if r, err := chooseRoot([]string{"/dev/vm2imgtest0/root"}, "", fss, order); r != "/dev/vm2imgtest0/root" || err != nil {
		t.Errorf("an LV as root: %q %v", r, err)
	}
	err := noOS(fss, order)
	for _, sentinel := range []error{ErrNoOS, ErrEncrypted, ErrUnknownFS} {
		if !errors.Is(err, sentinel) {
			t.Errorf("no system: %v is not %v", err, sentinel)
		}
	}
	if !strings.Contains(err.Error(), "/dev/sda1: encrypted (LUKS)") || strings.Contains(err.Error(), "\n") {
		t.Errorf("no system: message %q", err)
	}
}

func TestPickRootTrusted(t *testing.T) {
	vols := []volume{{Partition: Partition{Number: 1}, fsType: "ext4"}, {Partition: Partition{Number: 2}, fsType: "xfs"}}
	if _, err := pickRoot(vols, []int{0, 1}, "", nil, nil); !errors.Is(err, ErrSeveralRoots) {
		t.Errorf("two roots: %v", err)
	}
	if v, err := pickRoot(vols, []int{0, 1}, "2", nil, nil); err != nil || v.Number != 2 {
		t.Errorf("--disk-root 2: %+v %v", v, err)
	}
}
