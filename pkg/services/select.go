package services

import (
	"cmp"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/pkg/procs"
)

// SelectOptions tune Select.
type SelectOptions struct {
	// Exclude leaves out processes by name or regular expression. A plain word (letters,
	// digits, '.', '_', '-', '+', '@') must equal the program, argv[0]'s or the executable's
	// basename, comm or the service name; anything else is a regular expression that must
	// match one of those, or the whole command line, entirely.
	Exclude []string
	// AgentPID is the agent's own pid in the VM; the agent is also known by its name.
	AgentPID int
	// IncludeEnv copies each service's environment (which can hold secrets), without the
	// variables of login sessions and of systemd's service protocol.
	IncludeEnv bool
	// KeepSystem keeps the VM's own plumbing, left out by default: systemd-resolved,
	// DHCP clients, time sync, hypervisor guest agents, ...
	KeepSystem bool
	// Notef, when set, hears about every listening process left out and why, and about
	// services likely to need attention in a container.
	Notef func(format string, args ...any)
}

// Select picks the services among a VM's processes: each listening process tree is one service,
// its top process started again by the init. From a listening process it climbs to parents that
// listen on one of the same ports or run the same executable (nginx master and workers,
// postgres, apache) and stops below init systems and the agent. It leaves out kernel threads,
// the agent, init systems (PID 1 holding sockets for socket activation), login sessions (sshd's
// per-connection processes, login shells, getty, tmux, screen), the VM's plumbing unless
// KeepSystem, and opts.Exclude. A tree that climbs into a left-out process is left out whole.
// Services are sorted by name, names unique.
func Select(ps []procs.Process, opts SelectOptions) []Service {
	s := newSelector(ps, opts)
	members := map[int][]*procs.Process{} // top pid -> its listening processes
	var tops []*procs.Process
	for i := range ps {
		p := &ps[i]
		if len(p.Listening) == 0 {
			continue
		}
		if why := s.leaveOut(p); why != "" {
			s.note(p, why)
			continue
		}
		top, why := s.climb(p)
		if why != "" {
			s.note(p, why)
			continue
		}
		if _, ok := members[top.PID]; !ok {
			tops = append(tops, top)
		}
		members[top.PID] = append(members[top.PID], p)
	}
	out := make([]Service, 0, len(tops))
	for _, top := range tops {
		svc := s.service(top, members[top.PID])
		if len(svc.Argv) == 0 || svc.Argv[0] == "" {
			s.note(top, "its command line and executable are unreadable")
			continue
		}
		out = append(out, svc)
	}
	slices.SortStableFunc(out, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), comparePortLists(a.Ports, b.Ports))
	})
	names := make([]string, len(out))
	for i := range out {
		names[i] = out[i].Name
	}
	for i, n := range dedupe(names) {
		out[i].Name = n
	}
	return out
}

type selector struct {
	opts   SelectOptions
	byPID  map[int]*procs.Process
	words  []string
	res    []*regexp.Regexp
	noted  map[int]bool
	notesF func(string, ...any)
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9._@+-]+$`)

func newSelector(ps []procs.Process, opts SelectOptions) *selector {
	s := &selector{opts: opts, byPID: make(map[int]*procs.Process, len(ps)), noted: map[int]bool{}, notesF: opts.Notef}
	if s.notesF == nil {
		s.notesF = func(string, ...any) {}
	}
	for i := range ps {
		s.byPID[ps[i].PID] = &ps[i]
	}
	for _, e := range opts.Exclude {
		if re, err := regexp.Compile(`^(?:` + e + `)$`); err == nil && !plainWord.MatchString(e) {
			s.res = append(s.res, re)
		} else if e != "" {
			s.words = append(s.words, e) // plain, or an invalid expression taken literally
		}
	}
	return s
}

func (s *selector) note(p *procs.Process, why string) {
	if s.noted[p.PID] {
		return
	}
	s.noted[p.PID] = true
	s.notesF("leaving out %s (pid %d, listening on %s): %s", program(*p), p.PID, socketList(p.Listening), why)
}

// leaveOut says why p is not a service of its own, or "".
func (s *selector) leaveOut(p *procs.Process) string {
	switch {
	case p.Kernel:
		return "kernel thread"
	case s.isAgent(p):
		return "the vm2image agent"
	case p.PID == 1 && isInitSystem(p):
		return "the init system; it holds these sockets for socket activation, the services behind them are not converted"
	case isSession(p):
		return "part of a login session"
	case s.excluded(p):
		return "excluded"
	case !s.opts.KeepSystem && isPlumbing(p):
		return "the VM's own plumbing (keep it with KeepSystem)"
	}
	return ""
}

// climb returns the top of p's tree, or why the tree is left out.
func (s *selector) climb(p *procs.Process) (*procs.Process, string) {
	top := p
	seen := map[int]bool{p.PID: true}
	for {
		parent := s.byPID[top.PPID]
		if parent == nil || seen[parent.PID] || parent.Kernel || s.isAgent(parent) ||
			parent.PID == 1 && isInitSystem(parent) || !joins(parent, top, p) {
			return top, ""
		}
		if why := s.leaveOut(parent); why != "" {
			return nil, fmt.Sprintf("its parent %s (pid %d) is left out: %s", program(*parent), parent.PID, why)
		}
		seen[parent.PID] = true
		top = parent
	}
}

// joins reports whether parent belongs to the tree of child (first climbed from leaf): it runs
// the same executable or listens on one of the same ports.
func joins(parent, child, leaf *procs.Process) bool {
	if parent.Exe != "" && parent.Exe == child.Exe {
		return true
	}
	for _, ps := range parent.Listening {
		for _, l := range slices.Concat(child.Listening, leaf.Listening) {
			if protoFamily(ps.Proto) == protoFamily(l.Proto) && ps.Port == l.Port {
				return true
			}
		}
	}
	return false
}

func (s *selector) isAgent(p *procs.Process) bool {
	return s.opts.AgentPID != 0 && p.PID == s.opts.AgentPID || program(*p) == "vm2image-agent" ||
		path.Base(p.Exe) == "vm2image-agent" || p.Comm == "vm2image-agent"
}

func (s *selector) excluded(p *procs.Process) bool {
	names := []string{program(*p), path.Base(p.Exe), p.Comm, serviceName(*p)}
	if len(p.Argv) > 0 {
		names = append(names, path.Base(p.Argv[0]))
	}
	for _, w := range s.words {
		if slices.Contains(names, w) {
			return true
		}
	}
	line := strings.Join(p.Argv, " ")
	for _, re := range s.res {
		if re.MatchString(line) || slices.ContainsFunc(names, re.MatchString) {
			return true
		}
	}
	return false
}

var initSystems = []string{"systemd", "init", "openrc-init", "runit", "runit-init", "s6-svscan",
	"upstart", "tini", "dumb-init", "docker-init", "catatonit", "busybox-init"}

func isInitSystem(p *procs.Process) bool {
	return slices.Contains(initSystems, program(*p)) || slices.Contains(initSystems, path.Base(p.Exe))
}

var sessionPrograms = []string{"sshd-session", "sshd-auth", "login", "getty", "agetty", "mingetty",
	"tmux", "screen", "SCREEN", "mosh-server", "su", "sudo", "busybox-getty", "busybox-login"}

// isSession reports whether p is login-session machinery: sshd's per-connection processes
// ("sshd: user@pts/0", "sshd: user [priv]"), login shells (argv[0] "-bash"), getty, tmux, ...
func isSession(p *procs.Process) bool {
	prog := program(*p)
	if len(p.Argv) > 0 {
		a := p.Argv[0]
		if prog == "sshd" && strings.HasPrefix(a, "sshd: ") && !strings.Contains(a, "[listener]") {
			return true
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 { // a login shell
			return true
		}
	}
	return slices.Contains(sessionPrograms, prog) || strings.HasPrefix(prog, "tmux")
}

var plumbing = regexp.MustCompile(`^(systemd-.*|dhclient|dhcpcd|NetworkManager|wpa_supplicant|chronyd|ntpd|ntpsec|` +
	`avahi-daemon|rpcbind|rpc\.statd|qemu-ga|vmtoolsd|VGAuthService|waagent|google_guest_agent|` +
	`amazon-ssm-agent|snapd|cloud-init|dockerd|docker-proxy|containerd.*)$`)

func isPlumbing(p *procs.Process) bool { return plumbing.MatchString(program(*p)) }

// service builds the service of a tree from its top process and its listening members.
func (s *selector) service(top *procs.Process, members []*procs.Process) Service {
	argv, fg := commands(*top)
	svc := Service{
		Name: serviceName(*top), Argv: argv, Exe: strings.TrimSuffix(top.Exe, " (deleted)"), User: top.User, UID: top.UID, GID: top.GID,
		Cwd: top.Cwd, Restart: RestartNo, Foreground: fg, Unit: top.Unit,
	}
	if s.opts.IncludeEnv {
		svc.Env = cleanEnv(top.Env)
	}
	for _, m := range append([]*procs.Process{top}, members...) {
		for _, l := range m.Listening {
			p := Port{Proto: protoFamily(l.Proto), Port: l.Port, Addr: l.Addr}
			if a, err := netip.ParseAddr(l.Addr); err == nil {
				p.Addr = a.Unmap().String()
			}
			if !slices.Contains(svc.Ports, p) {
				svc.Ports = append(svc.Ports, p)
			}
		}
	}
	slices.SortFunc(svc.Ports, comparePorts)
	for _, p := range svc.Ports {
		if a, err := netip.ParseAddr(p.Addr); err == nil && !a.IsUnspecified() && !a.IsLoopback() {
			s.notesF("%s listens on %s port %d: a container will not have that address", svc.Name, p.Addr, p.Port)
		}
	}
	return svc
}

func protoFamily(proto string) string { return strings.TrimSuffix(proto, "6") }

func comparePortLists(a, b []Port) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := comparePorts(a[i], b[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

func socketList(socks []procs.Socket) string {
	var parts []string
	for _, s := range socks {
		parts = append(parts, fmt.Sprintf("%s/%d", s.Proto, s.Port))
	}
	return strings.Join(parts, ",")
}

// sessionEnv are variables of login sessions and of systemd's service protocol, which mean
// nothing, or something wrong, in a container.
var sessionEnv = regexp.MustCompile(`^(SSH_.*|XDG_SESSION_.*|XDG_RUNTIME_DIR|MAIL|SHLVL|_|OLDPWD|PWD|` +
	`TERM|DISPLAY|INVOCATION_ID|JOURNAL_STREAM|NOTIFY_SOCKET|LISTEN_FDS|LISTEN_PID|LISTEN_FDNAMES|` +
	`WATCHDOG_.*|MANAGERPID|SYSTEMD_EXEC_PID|MAINPID|SERVICE_RESULT|EXIT_CODE|EXIT_STATUS|` +
	`CREDENTIALS_DIRECTORY|RUNTIME_DIRECTORY|STATE_DIRECTORY|CACHE_DIRECTORY|LOGS_DIRECTORY|` +
	`CONFIGURATION_DIRECTORY|MEMORY_PRESSURE_.*|SUDO_.*|TMUX|TMUX_PANE|STY|WINDOW)$`)

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// cleanEnv keeps well-formed KEY=VALUE entries, first of each key, without session variables.
// Programs that rewrite their title (nginx) overwrite their environment area too: what procfs
// shows is then no environment at all, and nothing of it is kept.
func cleanEnv(env []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || !envKey.MatchString(k) || seen[k] || sessionEnv.MatchString(k) {
			continue
		}
		seen[k] = true
		out = append(out, e)
	}
	return out
}
