package sandbox

import (
	"context"
	"io"
	"os/exec"
	"syscall"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// BenchmarkStart measures what one command costs to start: /bin/true in a sandbox (re-exec,
// namespaces, pivot_root, /proc and /sys, capabilities) with and without the network, against
// a plain chroot(2) of the same root.
//
//	go test -run '^$' -bench BenchmarkStart ./internal/sandbox
func BenchmarkStart(b *testing.B) {
	testenv.Short(b)
	testenv.RequireRoot(b)
	root := sandboxRootB(b)
	for _, network := range []bool{false, true} {
		name := map[bool]string{false: "sandbox-offline", true: "sandbox-network"}[network]
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				err := Run(context.Background(), Spec{Root: root, Path: "/bin/true", Argv: []string{"true"}, Network: network}, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("plain-chroot", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("/bin/true")
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
