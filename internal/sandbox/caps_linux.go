package sandbox

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Kept are the capabilities a sandboxed command keeps: Docker's default set without
// CAP_MKNOD (no device cgroup guards the nodes it would make) and CAP_NET_RAW (an installer
// needs no raw sockets). CAP_SETFCAP stays: packages set file capabilities (ping).
var Kept = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER, unix.CAP_SETGID,
	unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP, unix.CAP_NET_BIND_SERVICE,
	unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// dropPrivileges, on the calling thread, which then execs: drops every capability but Kept
// from the bounding, inheritable, permitted, effective and ambient sets, and sets
// no_new_privs, so that neither root's exec nor a setuid or file-capability binary gets any
// back.
func dropPrivileges() error {
	var keep [2]uint32
	for _, c := range Kept {
		keep[c/32] |= 1 << (c % 32)
	}
	for c := 0; c < 64; c++ {
		if keep[c/32]&(1<<(c%32)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) { // past the kernel's last capability
				break
			}
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		data[i] = unix.CapUserData{Effective: keep[i], Permitted: keep[i], Inheritable: keep[i]}
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	return nil
}
