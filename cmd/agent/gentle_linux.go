package main

import "golang.org/x/sys/unix"

// beGentle lowers the agent's CPU and IO priority: it runs on production VMs.
func beGentle() {
	_ = unix.Setpriority(unix.PRIO_PROCESS, 0, 10)
	const ioprioWhoProcess, ioprioClassBE, ioprioClassShift = 1, 2, 13
	_, _, _ = unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, 0, uintptr(ioprioClassBE<<ioprioClassShift|7))
}
