package services

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vm2image/vm2image/pkg/procs"
)

const svc = "Service"

// unitDirs are the kinds of directories a unit asks systemd to create: key, base, whether
// the service's user owns them.
var unitDirs = []struct {
	key, base string
	owned     bool
}{
	{"RuntimeDirectory", "/run", true},
	{"StateDirectory", "/var/lib", true},
	{"CacheDirectory", "/var/cache", true},
	{"LogsDirectory", "/var/log", true},
	{"ConfigurationDirectory", "/etc", false},
}

// FromUnit describes the service a unit starts. base, when not nil, is the description from
// the running process the unit started: its name, ports and, for Type=forking units (whose
// ExecStart detaches), its foreground command with its user are kept. notef hears about
// directives a container cannot honour. Errors name the unit and the directive.
func FromUnit(u *Unit, base *Service, notef func(string, ...any)) (Service, error) {
	if notef == nil {
		notef = func(string, ...any) {}
	}
	out := Service{Source: SourceUnit, Unit: u.Name, Restart: RestartNo, ExpandEnv: true}
	if base != nil {
		out.Name, out.Ports, out.Exe = base.Name, base.Ports, base.Exe
	} else {
		out.Name = sanitize(strings.TrimSuffix(u.Name, ".service"))
	}
	sp := Specifiers{User: u.Value(svc, "User")}
	expand := func(key, v string) (string, error) {
		s, err := ExpandSpecifiers(v, u.Name, sp)
		if err != nil {
			return "", fmt.Errorf("unit %s: %s=: %w", u.Name, key, err)
		}
		return s, nil
	}
	if err := out.takeCommands(u, base, expand, notef); err != nil {
		return Service{}, err
	}
	if err := out.takeCredentials(u, base, expand); err != nil {
		return Service{}, err
	}
	if err := out.takeEnvironment(u, expand); err != nil {
		return Service{}, err
	}
	if err := out.takeDirectories(u, expand); err != nil {
		return Service{}, err
	}
	if err := out.takeLifecycle(u); err != nil {
		return Service{}, err
	}
	for _, k := range []string{"DynamicUser", "PrivateTmp", "ProtectSystem", "ProtectHome", "CapabilityBoundingSet",
		"MemoryMax", "MemoryLimit", "CPUQuota", "TasksMax", "LimitNOFILE", "Sockets", "WatchdogSec", "ExecReload", "ExecStop"} {
		if u.Value(svc, k) != "" {
			notef("%s: %s= is not honoured in a container", u.Name, k)
		}
	}
	return out, nil
}

func (out *Service) takeCommands(u *Unit, base *Service, expand func(string, string) (string, error), notef func(string, ...any)) error {
	starts := u.Values(svc, "ExecStart")
	if len(starts) == 0 {
		return fmt.Errorf("unit %s: no ExecStart=", u.Name)
	}
	if len(starts) > 1 {
		notef("%s: only the first of %d ExecStart= lines runs", u.Name, len(starts))
	}
	line, err := expand("ExecStart", starts[0])
	if err != nil {
		return err
	}
	main, err := ParseCommand(line)
	if err != nil {
		return fmt.Errorf("unit %s: ExecStart=: %w", u.Name, err)
	}
	for _, v := range u.Values(svc, "ExecStartPre") {
		l, err := expand("ExecStartPre", v)
		if err != nil {
			return err
		}
		c, err := ParseCommand(l)
		if err != nil {
			return fmt.Errorf("unit %s: ExecStartPre=: %w", u.Name, err)
		}
		out.Pre = append(out.Pre, c)
	}
	forking := u.Value(svc, "Type") == "forking"
	if forking && base != nil && len(base.Argv) > 0 {
		// The unit's command detaches; the process it left is what runs in the foreground,
		// as that process's user. Pre-start commands keep the unit's credentials.
		out.Argv, out.Foreground = base.Argv, base.Foreground
		out.User, out.UID, out.GID, out.Cwd = base.User, base.UID, base.GID, base.Cwd
		if u.Value(svc, "User") == "" {
			for i := range out.Pre {
				out.Pre[i].Privileged = true
			}
		}
		return nil
	}
	out.Argv, out.IgnoreFailure, out.Privileged = main.Argv, main.IgnoreFailure, main.Privileged
	_, fg := commands(procs.Process{Argv: main.Argv, Exe: main.Argv[0]})
	out.Foreground = fg
	return nil
}

func (out *Service) takeCredentials(u *Unit, base *Service, expand func(string, string) (string, error)) error {
	user := u.Value(svc, "User")
	if out.User == "" && out.UID == 0 {
		out.User = user
		if base != nil && base.User == user && user != "" {
			out.UID, out.GID = base.UID, base.GID
		}
	}
	if g := u.Value(svc, "Group"); g != "" {
		out.Group = g
	}
	for _, v := range u.Values(svc, "SupplementaryGroups") {
		out.SupplementaryGroups = append(out.SupplementaryGroups, strings.Fields(v)...)
	}
	if wd := u.Value(svc, "WorkingDirectory"); wd != "" {
		wd = strings.TrimPrefix(wd, "-")
		wd, err := expand("WorkingDirectory", wd)
		if err != nil {
			return err
		}
		if wd == "~" {
			wd = "" // the user's home: the init has no better answer than /
		}
		if wd != "" && !path.IsAbs(wd) {
			return fmt.Errorf("unit %s: WorkingDirectory=%s is not absolute", u.Name, wd)
		}
		out.Cwd = wd
	} else if out.Cwd == "" || base == nil || out.Argv[0] != base.Argv[0] {
		out.Cwd = "/"
	}
	if m := u.Value(svc, "UMask"); m != "" {
		if v, err := strconv.ParseUint(m, 8, 32); err != nil || v > 0o777 {
			return fmt.Errorf("unit %s: UMask=%s is not an octal mask", u.Name, m)
		}
		out.UMask = m
	}
	return nil
}

func (out *Service) takeEnvironment(u *Unit, expand func(string, string) (string, error)) error {
	for _, v := range u.Values(svc, "Environment") {
		v, err := expand("Environment", v)
		if err != nil {
			return err
		}
		words, err := SplitWords(v)
		if err != nil {
			return fmt.Errorf("unit %s: Environment=: %w", u.Name, err)
		}
		for _, w := range words {
			k, _, ok := strings.Cut(w, "=")
			if !ok || !envKey.MatchString(k) {
				return fmt.Errorf("unit %s: Environment=: %q is not KEY=VALUE", u.Name, w)
			}
			out.Env = slices.DeleteFunc(out.Env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
			out.Env = append(out.Env, w)
		}
	}
	for _, v := range u.Values(svc, "EnvironmentFile") {
		v, err := expand("EnvironmentFile", v)
		if err != nil {
			return err
		}
		f := EnvFile{Path: strings.TrimPrefix(v, "-"), Optional: strings.HasPrefix(v, "-")}
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("unit %s: EnvironmentFile=%s is not absolute", u.Name, v)
		}
		out.EnvFiles = append(out.EnvFiles, f)
	}
	return nil
}

func (out *Service) takeDirectories(u *Unit, expand func(string, string) (string, error)) error {
	for _, d := range unitDirs {
		mode := "0755"
		if m := u.Value(svc, d.key+"Mode"); m != "" {
			if v, err := strconv.ParseUint(m, 8, 32); err != nil || v > 0o7777 {
				return fmt.Errorf("unit %s: %sMode=%s is not an octal mode", u.Name, d.key, m)
			}
			mode = m
		}
		for _, v := range u.Values(svc, d.key) {
			v, err := expand(d.key, v)
			if err != nil {
				return err
			}
			for _, name := range strings.Fields(v) {
				name, _, _ = strings.Cut(name, ":") // "dir:symlink": the symlink is not made
				p := path.Join(d.base, name)
				if path.IsAbs(name) || !strings.HasPrefix(p, d.base+"/") {
					return fmt.Errorf("unit %s: %s=%s must be a relative path below %s", u.Name, d.key, name, d.base)
				}
				out.Directories = append(out.Directories, Directory{Path: p, Mode: mode, Owned: d.owned, Runtime: d.key == "RuntimeDirectory"})
			}
		}
	}
	return nil
}

func (out *Service) takeLifecycle(u *Unit) error {
	switch r := u.Value(svc, "Restart"); r {
	case "", "no":
		out.Restart = RestartNo
	case "always":
		out.Restart = RestartAlways
	case "on-success":
		out.Restart = RestartOnSuccess
	case "on-failure", "on-abnormal", "on-abort", "on-watchdog":
		out.Restart = RestartOnFailure
	default:
		return fmt.Errorf("unit %s: Restart=%s is not a restart policy", u.Name, r)
	}
	if v := u.Value(svc, "RestartSec"); v != "" {
		d, err := ParseTimeSpan(v)
		if err != nil {
			return fmt.Errorf("unit %s: RestartSec=: %w", u.Name, err)
		}
		out.RestartSec = d
	}
	if v := u.Value(svc, "KillSignal"); v != "" {
		if SignalNumber(v) == 0 {
			return fmt.Errorf("unit %s: KillSignal=%s is not a signal", u.Name, v)
		}
		out.KillSignal = v
	}
	v := u.Value(svc, "TimeoutStopSec")
	if v == "" {
		v = u.Value(svc, "TimeoutSec")
	}
	if v != "" && v != "infinity" {
		d, err := ParseTimeSpan(v)
		if err != nil {
			return fmt.Errorf("unit %s: TimeoutStopSec=: %w", u.Name, err)
		}
		out.StopTimeout = d
	}
	return nil
}

var timeUnits = map[string]time.Duration{"": time.Second, "us": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond, "s": time.Second, "sec": time.Second,
	"second": time.Second, "seconds": time.Second, "m": time.Minute, "min": time.Minute,
	"minute": time.Minute, "minutes": time.Minute, "h": time.Hour, "hr": time.Hour, "hour": time.Hour,
	"hours": time.Hour, "d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}

// ParseTimeSpan reads a systemd time span: "5" (seconds), "100ms", "1min 30s", "2h".
func ParseTimeSpan(s string) (time.Duration, error) {
	var total time.Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, fmt.Errorf("empty time span")
	}
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || i == 0 {
			return 0, fmt.Errorf("bad time span %q", s)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && (rest[j] >= 'a' && rest[j] <= 'z') {
			j++
		}
		unit, ok := timeUnits[rest[:j]]
		if !ok || num > 1e9 {
			return 0, fmt.Errorf("bad time span %q", s)
		}
		total += time.Duration(num * float64(unit))
		rest = strings.TrimLeft(rest[j:], " ")
	}
	return total, nil
}
