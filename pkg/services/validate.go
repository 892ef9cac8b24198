package services

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// validateUnitFields checks the fields that come from systemd units.
func (s Service) validateUnitFields() error {
	switch s.Source {
	case "", SourceUnit, SourceProcess:
	default:
		return fmt.Errorf("%w: source %q (want unit or process)", ErrInvalid, s.Source)
	}
	if s.UMask != "" {
		if v, err := strconv.ParseUint(s.UMask, 8, 32); err != nil || v > 0o777 {
			return fmt.Errorf("%w: umask %q (want octal up to 0777)", ErrInvalid, s.UMask)
		}
	}
	for _, c := range s.Pre {
		if len(c.Argv) == 0 || c.Argv[0] == "" {
			return fmt.Errorf("%w: empty exec_start_pre command", ErrInvalid)
		}
	}
	for _, f := range s.EnvFiles {
		if !path.IsAbs(f.Path) {
			return fmt.Errorf("%w: env file %q is not absolute", ErrInvalid, f.Path)
		}
	}
	for _, d := range s.Directories {
		if !path.IsAbs(d.Path) || path.Clean(d.Path) != d.Path || d.Path == "/" {
			return fmt.Errorf("%w: directory %q (want an absolute clean path below /)", ErrInvalid, d.Path)
		}
		if v, err := strconv.ParseUint(d.Mode, 8, 32); err != nil || v > 0o7777 {
			return fmt.Errorf("%w: directory %s mode %q (want octal)", ErrInvalid, d.Path, d.Mode)
		}
	}
	if s.KillSignal != "" && SignalNumber(s.KillSignal) == 0 {
		return fmt.Errorf("%w: kill_signal %q", ErrInvalid, s.KillSignal)
	}
	if s.RestartSec < 0 || s.StopTimeout < 0 {
		return fmt.Errorf("%w: negative restart_sec or stop_timeout", ErrInvalid)
	}
	return nil
}

var signalNumbers = map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6,
	"BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
	"TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22,
	"URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31}

// SignalNumber returns the Linux number of a signal named "SIGTERM", "TERM" or "15", or 0.
func SignalNumber(name string) int {
	if n, err := strconv.Atoi(name); err == nil {
		if n > 0 && n < 65 {
			return n
		}
		return 0
	}
	return signalNumbers[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
}
