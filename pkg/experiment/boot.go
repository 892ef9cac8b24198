package experiment

import (
	"context"
	"fmt"
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
	boot := fixture.Boot{Root: merged, Agent: bin, Token: tok, Inside: strings.Join(exports, "\n") + "\n" + rec.Start}
	proc, err := boot.Start(nil, 2*time.Minute)
	if proc != nil {
		ps.closers = append(ps.closers, proc.Stop)
	}
	if err != nil {
		return fmt.Errorf("booting %s: %w", ps.spec.Name, err)
	}
	addr := proc.Addr
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
