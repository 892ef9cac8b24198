package services

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"time"
)

// Restart policies of a service, as the image's init applies them.
const (
	RestartNo        = "no"         // the container stops when the service ends (the default)
	RestartOnFailure = "on-failure" // restart after a non-zero exit or a death by signal
	RestartAlways    = "always"     // restart after every exit
	RestartOnSuccess = "on-success" // restart after a clean exit (code 0)
)

// Defaults the init applies when services.yaml leaves a field out.
const (
	DefaultStopTimeout       = 10 * time.Second
	DefaultRestartsPerMinute = 5
	DefaultPath              = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// ConfigVersion is the services.yaml format version this package writes and reads.
	ConfigVersion = 1
)

// Service is one service of the VM: the top process of a listening process tree, started again
// by the image's init with the same command, user, working directory and environment.
type Service struct {
	// Name is stable and unique in a Config, derived from the program's basename ("nginx",
	// "busybox-httpd", "app-2"); it names the service in the init's log lines.
	Name string `yaml:"name"`
	// Argv is the command as the VM started it; a rewritten process title ("nginx: master
	// process /usr/sbin/nginx") is recovered into the real command.
	Argv []string `yaml:"argv"`
	Exe  string   `yaml:"exe,omitempty"` // the executable the VM ran, for information
	User string   `yaml:"user"`          // name of UID in the VM; the init looks it up only when uid and gid are 0
	UID  int      `yaml:"uid"`           // real user id the service runs as
	GID  int      `yaml:"gid"`           // real group id the service runs as
	Cwd  string   `yaml:"cwd"`           // working directory ("" is /)
	Env  []string `yaml:"env,omitempty"` // KEY=VALUE; PATH is added by the init when absent
	// Ports the service's process tree listened on in the VM, unique and sorted.
	Ports []Port `yaml:"ports"`
	// Restart is RestartNo (also when empty), RestartOnFailure or RestartAlways.
	Restart string `yaml:"restart"`
	// Foreground is the command the init runs instead of Argv when Argv would detach (daemonize)
	// and the program has a flag that keeps it in the foreground: see daemons.go.
	Foreground []string `yaml:"foreground_argv,omitempty"`

	// Source says where this description came from: SourceUnit (the systemd unit that started
	// the process, or an enabled unit) or SourceProcess (the running process; "" reads as it).
	Source string `yaml:"source,omitempty"`
	Unit   string `yaml:"unit,omitempty"` // the systemd unit, when known
	// Group and SupplementaryGroups are names (or numbers) the init looks up in the image's
	// /etc/group; Group overrides GID when set.
	Group               string   `yaml:"group,omitempty"`
	SupplementaryGroups []string `yaml:"supplementary_groups,omitempty"`
	// UMask is an octal file mode creation mask ("0022"); "" keeps the init's.
	UMask string `yaml:"umask,omitempty"`
	// Pre are run in order before the command (ExecStartPre=); one that fails without
	// ignore_failure fails the start.
	Pre []Command `yaml:"exec_start_pre,omitempty"`
	// IgnoreFailure: the command's exit code counts as success ("-" prefix of ExecStart=).
	IgnoreFailure bool `yaml:"ignore_failure,omitempty"`
	// Privileged: the command runs as root ("+" or "!" prefix of ExecStart=).
	Privileged bool `yaml:"privileged,omitempty"`
	// ExpandEnv: the init expands $VAR and ${VAR} in the commands with the service's
	// environment, as systemd does ($$ is a dollar).
	ExpandEnv bool `yaml:"expand_env,omitempty"`
	// EnvFiles are read by the init at start, inside the container, in order; later
	// assignments win over Env.
	EnvFiles []EnvFile `yaml:"env_files,omitempty"`
	// Directories are created by the init before the service starts.
	Directories []Directory `yaml:"directories,omitempty"`
	// RestartSec is the first delay before a restart (default 100ms), doubled per restart.
	RestartSec time.Duration `yaml:"restart_sec,omitempty"`
	// KillSignal is the signal a stop sends ("SIGTERM" when empty).
	KillSignal string `yaml:"kill_signal,omitempty"`
	// StopTimeout overrides the configuration's stop timeout for this service.
	StopTimeout time.Duration `yaml:"stop_timeout,omitempty"`
	// Main: when this service ends for good, the init stops the others and exits with its
	// code.
	Main bool `yaml:"main,omitempty"`
}

// Where a service's description came from.
const (
	SourceUnit    = "unit"
	SourceProcess = "process"
)

// EnvFile is an EnvironmentFile= of a unit.
type EnvFile struct {
	Path     string `yaml:"path"`
	Optional bool   `yaml:"optional,omitempty"` // "-" prefix: a missing file is no error
}

// Directory is a directory the init creates before a service starts (RuntimeDirectory= and
// its kind): mode, and owned by the service's user and group when Owned.
type Directory struct {
	Path  string `yaml:"path"`
	Mode  string `yaml:"mode"` // octal
	Owned bool   `yaml:"owned,omitempty"`
	// Runtime: emptied when the service stops for good, as RuntimeDirectory= is (informational).
	Runtime bool `yaml:"runtime,omitempty"`
}

// Skipped is a service of the VM the selection left out, with the reason.
type Skipped struct {
	Name   string `yaml:"name"`
	Unit   string `yaml:"unit,omitempty"`
	Reason string `yaml:"reason"`
}

// Port is one socket a service listened on.
type Port struct {
	Proto string `yaml:"proto"` // "tcp" or "udp" (IPv6 sockets too: Addr tells them apart)
	Port  int    `yaml:"port"`
	Addr  string `yaml:"addr"` // the local address: "0.0.0.0", "::", "127.0.0.1", ...
}

// Config is the run configuration of an image: services.yaml.
type Config struct {
	Version  int       `yaml:"version"` // ConfigVersion; 0 reads as 1
	Services []Service `yaml:"services"`
	// StopTimeout is how long the init waits after SIGTERM before SIGKILL (default 10s).
	StopTimeout time.Duration `yaml:"stop_timeout,omitempty"`
	// RestartsPerMinute caps the restarts of one service; past it the service counts as
	// failed (default 5).
	RestartsPerMinute int `yaml:"restarts_per_minute,omitempty"`
	// Notes say why processes of the VM were left out, for people reading the file. The init
	// ignores them.
	Notes []string `yaml:"notes,omitempty"`
	// StopOnFailure: the first service that fails for good stops the others (by default the
	// others keep running and the container ends when the last service ends).
	StopOnFailure bool `yaml:"stop_on_failure,omitempty"`
	// Skipped lists the VM's services left out on purpose; the init ignores it.
	Skipped []Skipped `yaml:"skipped,omitempty"`
}

// Command returns what the init runs: Foreground when set, else Argv.
func (s Service) Command() []string {
	if len(s.Foreground) > 0 {
		return s.Foreground
	}
	return s.Argv
}

// Stop returns StopTimeout or its default.
func (c Config) Stop() time.Duration { return cmp.Or(c.StopTimeout, DefaultStopTimeout) }

// RestartLimit returns RestartsPerMinute or its default.
func (c Config) RestartLimit() int { return cmp.Or(c.RestartsPerMinute, DefaultRestartsPerMinute) }

// PublishedPorts returns the ports worth publishing from a container: unique by protocol and
// number, sorted, without those the VM only bound to a loopback address (a container's
// loopback is not reachable through a port mapping; such services still answer inside it).
func (c Config) PublishedPorts() []Port {
	var out []Port
	for _, s := range c.Services {
		for _, p := range s.Ports {
			if isLoopback(p.Addr) {
				continue
			}
			p.Addr = ""
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, comparePorts)
	return out
}

func isLoopback(addr string) bool {
	a, err := netip.ParseAddr(addr)
	return err == nil && a.Unmap().IsLoopback()
}

func comparePorts(a, b Port) int {
	return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Addr, b.Addr))
}

// ErrInvalid marks a Config that parses but cannot be run.
var ErrInvalid = errors.New("invalid services configuration")

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Validate checks that the init can run c: names valid and unique, commands present, known
// restart policies, ids and ports in range. Errors wrap ErrInvalid.
func (c Config) Validate() error {
	if c.Version < 0 || c.Version > ConfigVersion {
		return fmt.Errorf("%w: version %d (this build reads up to %d)", ErrInvalid, c.Version, ConfigVersion)
	}
	if c.StopTimeout < 0 || c.RestartsPerMinute < 0 {
		return fmt.Errorf("%w: negative stop_timeout or restarts_per_minute", ErrInvalid)
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		if err := s.validate(); err != nil {
			return &ServiceError{Index: i, Name: s.Name, Err: err}
		}
		if seen[s.Name] {
			return &ServiceError{Index: i, Name: s.Name, Err: fmt.Errorf("%w: duplicate name", ErrInvalid)}
		}
		seen[s.Name] = true
	}
	return nil
}

func (s Service) validate() error {
	switch {
	case !validName.MatchString(s.Name):
		return fmt.Errorf("%w: name %q (want lowercase letters, digits, '.', '_', '-')", ErrInvalid, s.Name)
	case len(s.Argv) == 0 || s.Argv[0] == "":
		return fmt.Errorf("%w: empty argv", ErrInvalid)
	case len(s.Foreground) > 0 && s.Foreground[0] == "":
		return fmt.Errorf("%w: empty foreground_argv[0]", ErrInvalid)
	case s.UID < 0 || s.GID < 0 || s.UID > 1<<31-2 || s.GID > 1<<31-2:
		return fmt.Errorf("%w: uid %d, gid %d", ErrInvalid, s.UID, s.GID)
	}
	if err := s.validateUnitFields(); err != nil {
		return err
	}
	switch s.Restart {
	case "", RestartNo, RestartOnFailure, RestartAlways, RestartOnSuccess:
	default:
		return fmt.Errorf("%w: restart %q (want no, on-failure or always)", ErrInvalid, s.Restart)
	}
	for _, p := range s.Ports {
		if p.Proto != "tcp" && p.Proto != "udp" || p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("%w: port %s/%d", ErrInvalid, p.Proto, p.Port)
		}
		if _, err := netip.ParseAddr(p.Addr); p.Addr != "" && err != nil {
			return fmt.Errorf("%w: port address %q", ErrInvalid, p.Addr)
		}
	}
	return nil
}

// ServiceError is a validation error of one service; Line is its line in services.yaml when
// known.
type ServiceError struct {
	Index int
	Name  string
	Line  int
	Err   error
}

func (e *ServiceError) Error() string {
	where := fmt.Sprintf("service %d (%q)", e.Index+1, e.Name)
	if e.Line > 0 {
		where = fmt.Sprintf("line %d: %s", e.Line, where)
	}
	return where + ": " + e.Err.Error()
}

func (e *ServiceError) Unwrap() error { return e.Err }
