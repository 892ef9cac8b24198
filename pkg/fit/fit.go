package fit

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Verdicts.
const (
	Ready          = "ready"            // nothing to decide
	ReadyWithNotes = "ready-with-notes" // it runs; read the notes
	NeedsWork      = "needs-work"       // something will not work as it did without a decision
)

// Severities of a finding.
const (
	Note     = "note"     // comes along, differently: worth knowing
	Decision = "decision" // will not work as in the VM until the operator decides
)

// Kinds of findings.
const (
	KindMount        = "mount"         // fstab: network filesystems, extra disks
	KindModule       = "kernel-module" // modules-load.d, /etc/modules, modprobe in a unit
	KindSysctl       = "sysctl"        // sysctl.d, sysctl.conf
	KindTimer        = "systemd-timer" // an enabled .timer unit
	KindCron         = "cron-job"      // crontab lines
	KindBound        = "bound-address" // a service listening on one interface address
	KindRawDevice    = "raw-device"    // a device node or /dev path a service or fstab uses
	KindSetuid       = "setuid"        // setuid/setgid programs outside packages' usual set
	KindCapability   = "file-capability"
	KindDataDir      = "data-directory" // database and mail directories, large service data
	KindHostname     = "hostname"       // configuration naming the VM's hostname or addresses
	KindNeedsSystemd = "needs-systemd"  // units that need systemd itself (sockets, D-Bus, ...)
)

// Finding is one thing that needs the operator's attention.
type Finding struct {
	Kind       string `json:"kind"`
	Severity   string `json:"severity"`
	Subject    string `json:"subject"`          // the mount point, module, unit, path, ...
	Where      string `json:"where,omitempty"`  // the VM file (and line) it was read from
	Reason     string `json:"reason"`           // why it matters in a container
	Suggestion string `json:"suggestion"`       // what to do
	Bytes      int64  `json:"bytes,omitempty"`  // data directories: their size
	Volume     bool   `json:"volume,omitempty"` // a data directory convert --volumes auto moves
}

// Service is a service that comes along and how it will start.
type Service struct {
	Name  string   `json:"name"`
	Unit  string   `json:"unit,omitempty"`
	Start string   `json:"start"` // "unit" (from its systemd unit) or "process" (its command line)
	Argv  []string `json:"argv"`  // the command the image's init runs
	User  string   `json:"user"`  // the user it runs as
	Ports []string `json:"ports"` // "tcp 0.0.0.0:80"
}

// Skipped is a service a conversion leaves out, and why.
type Skipped struct {
	Name   string `json:"name"`
	Unit   string `json:"unit,omitempty"`
	Reason string `json:"reason"`
}

// Report is the fit assessment of one VM (inspect --fit, and a section of the conversion report).
type Report struct {
	Verdict  string    `json:"verdict"`
	Services []Service `json:"services"`
	Skipped  []Skipped `json:"skipped,omitempty"`
	Users    []string  `json:"users"` // the users the services run as
	Findings []Finding `json:"findings"`
	// Problems are VM files that could not be read (too large, unreadable): the report is
	// then partial.
	Problems []string `json:"problems,omitempty"`
}

// Source is what fit reads from the VM: manifests and tar streams of files, never host paths.
type Source interface {
	Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error)
	Files(ctx context.Context, args wire.TreeArgs) (source.TarStream, error)
}

var _ Source = source.Source(nil)

// Input is what the caller already knows of the VM.
type Input struct {
	Services  services.Config // what a conversion would start and skip
	Processes []procs.Process // listening processes (none for dir: and tar: sources)
	Hostname  string
	Excludes  []string // paths a conversion leaves out (the manifest walk skips them)
}

// Analyze reads the VM's configuration and manifest and returns its fit report.
func Analyze(ctx context.Context, src Source, in Input) (*Report, error) {
	vm, problems := readConfig(ctx, src)
	rep := &Report{Services: []Service{}, Users: []string{}, Findings: []Finding{}, Problems: problems}
	rep.comesAlong(in)
	a := &analysis{vm: vm, in: in}
	for _, check := range []func() []Finding{a.mounts, a.modules, a.sysctls, a.timers, a.cron, a.bound, a.devices, a.needsSystemd, a.hostname} {
		rep.Findings = append(rep.Findings, check()...)
	}
	walked, err := walkTree(ctx, src, in.Excludes)
	if err != nil {
		return nil, fmt.Errorf("walking the VM's manifest: %w", err)
	}
	rep.Findings = append(rep.Findings, walked...)
	rep.Verdict = verdict(rep.Findings)
	return rep, nil
}

func verdict(fs []Finding) string {
	v := Ready
	for _, f := range fs {
		if f.Severity == Decision {
			return NeedsWork
		}
		v = ReadyWithNotes
	}
	return v
}

func (rep *Report) comesAlong(in Input) {
	users := map[string]bool{}
	for _, s := range in.Services.Services {
		fs := Service{Name: s.Name, Unit: s.Unit, Start: cmpOr(s.Source, services.SourceProcess), Argv: s.Argv, User: userName(s), Ports: []string{}}
		for _, p := range s.Ports {
			fs.Ports = append(fs.Ports, fmt.Sprintf("%s %s", p.Proto, hostPort(p.Addr, p.Port)))
		}
		rep.Services = append(rep.Services, fs)
		users[fs.User] = true
	}
	for _, s := range in.Services.Skipped {
		rep.Skipped = append(rep.Skipped, Skipped{Name: s.Name, Unit: s.Unit, Reason: s.Reason})
	}
	for u := range users {
		rep.Users = append(rep.Users, u)
	}
	slices.Sort(rep.Users)
}

// DataDirs are the data directories a report found, for convert --volumes auto.
func (rep *Report) DataDirs() []string {
	var out []string
	for _, f := range rep.Findings {
		if f.Kind == KindDataDir && f.Volume {
			out = append(out, f.Subject)
		}
	}
	return out
}

func hostPort(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func userName(s services.Service) string {
	switch {
	case s.User != "":
		return s.User
	case s.UID == 0:
		return "root"
	}
	return fmt.Sprint(s.UID)
}
