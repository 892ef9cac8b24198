package verify

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

func netnsPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/ns/net" }

// canEnterNetns reports why the network namespace of pid cannot be entered, or nil.
func canEnterNetns(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("no process id")
	}
	return unix.Access(netnsPath(pid), unix.R_OK)
}

// dialInNetns connects to addr from the network namespace of process pid. The socket is made by
// a goroutine locked to its own thread that enters the namespace and never leaves it: the
// runtime ends that thread with the goroutine, and the socket stays in the namespace.
func dialInNetns(ctx context.Context, pid int, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread is discarded with the goroutine
		fd, err := unix.Open(netnsPath(pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("opening the container's network namespace: %w", err)}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			ch <- result{err: fmt.Errorf("entering the container's network namespace: %w", err)}
			return
		}
		c, err := hostDial(ctx, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
