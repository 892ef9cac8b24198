package services

import (
	"errors"
	"path"
	"slices"
	"strings"
)

// UnitOptions tune FromUnits.
type UnitOptions struct {
	// Include names services to keep although they are left out by default ("sshd"), or
	// enabled units to add ("ssh.service"); Skip names services to leave out. A name matches a
	// service's name, its unit ("ssh.service" or "ssh") or its program.
	Include, Skip []string
	// NoProcesses: the source has no running processes (dir:, tar:, an agent serving --root):
	// the services are the VM's enabled units.
	NoProcesses bool
	// CronInUse: the VM has crontabs of its own (/var/spool/cron/crontabs, /etc/cron.d beyond
	// packages); cron is left out by default otherwise.
	CronInUse bool
	Notef     func(format string, args ...any)
}

// defaultSkip are services that make no sense in a container, left out unless included.
var defaultSkip = map[string]string{
	"sshd": "remote logins: use docker exec", "ssh": "remote logins: use docker exec",
	"getty": "consoles", "agetty": "consoles", "serial-getty": "consoles",
	"udev": "devices are the engine's", "systemd-udevd": "devices are the engine's",
	"systemd-journald": "logging is the engine's", "systemd-timesyncd": "the host keeps the time",
	"systemd-logind": "login sessions", "dbus": "the system bus serves systemd, absent here",
	"dbus-daemon": "the system bus serves systemd, absent here", "vm2image-agent": "the conversion agent",
	"systemd-networkd": "the network is the engine's", "systemd-resolved": "the network is the engine's",
	"networking": "the network is the engine's", "ifup": "the network is the engine's",
}

// FromUnits rewrites cfg's services from the VM's units (m holds the unit directories): a
// service whose process belongs to a unit is described by that unit (source: unit); others
// keep their process-based description (source: process). Without processes, the enabled
// units are the services. Services that make no sense in a container are then moved to
// cfg.Skipped with their reason, as are opts.Skip; opts.Include keeps or adds them.
func FromUnits(cfg *Config, m *MemFS, opts UnitOptions) {
	notef := opts.Notef
	if notef == nil {
		notef = func(string, ...any) {}
	}
	var out []Service
	for _, s := range cfg.Services {
		if strings.HasSuffix(s.Unit, ".service") {
			if us, err := serviceOfUnit(m, s.Unit, &s, notef); err == nil {
				s = us
			} else {
				notef("%s: described by its process: %v", s.Name, err)
			}
		}
		s.Source = cmpOr(s.Source, SourceProcess)
		out = append(out, s)
	}
	var wanted []string
	if opts.NoProcesses {
		wanted = EnabledUnits(m)
	}
	for _, inc := range opts.Include {
		if n := unitName(inc); m.Exists(path.Join("/lib/systemd/system", n)) || findFragment(m, n) != "" {
			wanted = append(wanted, n)
		}
	}
	for _, n := range wanted {
		if slices.ContainsFunc(out, func(s Service) bool { return s.Unit == n }) {
			continue
		}
		s, err := serviceOfUnit(m, n, nil, notef)
		if err != nil {
			if !errors.Is(err, errNothingToRun) {
				notef("enabled unit %s is left out: %v", n, err)
			}
			continue
		}
		out = append(out, s)
	}
	cfg.Services = nil
	for _, s := range out {
		if why := skipReason(s, opts); why != "" {
			cfg.Skipped = append(cfg.Skipped, Skipped{Name: s.Name, Unit: s.Unit, Reason: why})
			continue
		}
		cfg.Services = append(cfg.Services, s)
	}
	slices.SortStableFunc(cfg.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	names := make([]string, len(cfg.Services))
	for i := range cfg.Services {
		names[i] = cfg.Services[i].Name
	}
	for i, n := range dedupe(names) {
		cfg.Services[i].Name = n
	}
}

var errNothingToRun = errors.New("the unit runs nothing lasting")

func serviceOfUnit(m *MemFS, name string, base *Service, notef func(string, ...any)) (Service, error) {
	u, err := LoadUnit(m, name)
	if err != nil {
		return Service{}, err
	}
	if base == nil {
		starts := u.Values(svc, "ExecStart")
		if len(starts) == 0 || slices.Contains([]string{"/bin/true", "/usr/bin/true"}, strings.TrimLeft(starts[0], "-@+!:")) {
			return Service{}, errNothingToRun
		}
	}
	return FromUnit(u, base, notef)
}

func unitName(s string) string {
	if strings.Contains(s, ".") {
		return s
	}
	return s + ".service"
}

// keys are the names a service is known by for selection.
func keys(s Service) []string {
	k := []string{s.Name}
	if s.Unit != "" {
		u := strings.TrimSuffix(s.Unit, ".service")
		k = append(k, s.Unit, u)
		if p, _, ok := strings.Cut(u, "@"); ok {
			k = append(k, p)
		}
	}
	if len(s.Argv) > 0 {
		k = append(k, path.Base(s.Argv[0]))
	}
	return k
}

func skipReason(s Service, opts UnitOptions) string {
	k := keys(s)
	matches := func(list []string) bool {
		return slices.ContainsFunc(list, func(n string) bool { return slices.Contains(k, n) })
	}
	if matches(opts.Skip) {
		return "--skip-service"
	}
	if matches(opts.Include) {
		return ""
	}
	for _, n := range k {
		if why, ok := defaultSkip[n]; ok {
			return why + " (keep it with --service " + s.Name + ")"
		}
		if (n == "cron" || n == "crond") && !opts.CronInUse {
			return "no crontab of the VM's own (keep it with --service " + s.Name + ")"
		}
	}
	return ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
