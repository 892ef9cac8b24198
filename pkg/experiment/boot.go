package experiment

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vm2image/vm2image/internal/fixture"
)

// boot starts a fixture as a small VM on a writable overlay of its cached root: its own pid and
// mount namespaces, /proc, /sys, a tmpfs /run and /dev inside, the recipe's services started by
// its Start script (PORT_NAME holds the free port chosen for each of its Ports), and the agent
// serving the VM from inside on a free port of 127.0.0.1.
func (r *runner) boot(ctx context.Context, ps *preparedSource, rec Recipe) error {
	bin, err := r.agentBinary()
	if err != nil {
		return err
	}
	merged, unmount, err := fixture.MountOverlay(r.work, "boot-"+ps.spec.Name, ps.root)
	if err != nil {
		return err
	}
	ps.closers = append(ps.closers, unmount)
	tok, _, err := r.newToken(ps.spec.Name)
	if err != nil {
		return err
	}
	ports := map[string]int{}
	var exports []string
	for _, name := range rec.Ports {
		p, err := fixture.FreePort()
		if err != nil {
			return err
		}
		ports[name] = p
		exports = append(exports, fmt.Sprintf("export PORT_%s=%d", strings.ToUpper(name), p))
	}
	inside := strings.Join(exports, "\n") + "\nmount -t sysfs sysfs /sys 2>/dev/null || true\n" + rec.Start +
		"\nexec /run/vm2image-agent --listen 127.0.0.1:0 --token-file /run/vm2image-token --quiet\n"
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc="+filepath.Join(merged, "proc"),
		"--kill-child", "/bin/sh", "-c", bootOutside)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "VMROOT=" + merged, "AGENT=" + bin,
		"TOKEN=" + string(tok), "INSIDE=" + inside}
	// No Pdeathsig: it fires when the OS thread that forked exits, and Go retires threads (a
	// goroutine that entered another namespace ends locked to its thread). The source's close
	// kills the VM; unshare --kill-child takes the rest.
	addr, stop, err := startListening(cmd, 2*time.Minute)
	if stop != nil {
		ps.closers = append(ps.closers, stop)
	}
	if err != nil {
		return fmt.Errorf("booting %s: %w", ps.spec.Name, err)
	}
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := fixture.WaitPort(ctx, fmt.Sprintf("127.0.0.1:%d", ports[n]), time.Minute); err != nil {
			return fmt.Errorf("booting %s: service %s: %w", ps.spec.Name, n, err)
		}
	}
	r.progressf("experiment:   %s booted: agent on %s, services on %v", ps.spec.Name, addr, ports)
	ps.source, ps.opts.Token = addr, tok
	return nil
}

// bootOutside runs in the VM's new namespaces, outside its root: it mounts what a booted system
// has, puts the agent and its token on /run, and enters the root.
const bootOutside = `set -e
mount -t tmpfs -o mode=755 tmpfs "$VMROOT/run"
mount -t tmpfs -o mode=755 tmpfs "$VMROOT/dev"
mkdir -m 1777 "$VMROOT/dev/shm" "$VMROOT/run/lock"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do set -- $n; mknod -m 666 "$VMROOT/dev/$1" c "$2" "$3"; done
ln -s /proc/self/fd "$VMROOT/dev/fd"
cp "$AGENT" "$VMROOT/run/vm2image-agent"
printf '%s\n' "$TOKEN" > "$VMROOT/run/vm2image-token"
exec chroot "$VMROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C /bin/sh -ec "$INSIDE"`
