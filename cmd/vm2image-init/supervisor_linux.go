package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/vm2image/vm2image/pkg/services"
)

// forwarded are the signals the init passes on to every service's process group.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1,
	syscall.SIGUSR2, syscall.SIGQUIT}

// killGrace is how long the init waits for SIGKILLed processes to be reaped before it exits.
const killGrace = 5 * time.Second

// service is the state of one configured service.
type service struct {
	spec services.Service
	pid  int // the leader's pid; 0 when it is not running
	pgid int // the service's process group: the leader's first pid
	// detached: the leader exited 0 while processes of the service live on (a daemon that forked
	// into the background); the service runs until they are gone.
	detached bool
	lastCode int
	restarts []time.Time // within the last minute
	pending  bool        // a restart is scheduled
	done     bool        // ended for good (not restarted)
}

// supervisor runs the services. Everything happens on one goroutine (run's loop): processes are
// started and reaped there, so no exit can be reaped before its pid is known.
type supervisor struct {
	cfg      services.Config
	svcs     []*service
	tty      bool // give the terminal on stdin to the (only) service
	logw     io.Writer
	self     int
	leaders  map[int]*service
	claims   map[int]*service // reparented orphans, by the service they are counted for
	restartC chan *service

	stopping  bool
	requested bool // the stop came from a signal
	code      int  // the exit code once decided
	decided   bool
	killC     <-chan time.Time
	giveUpC   <-chan time.Time
	failCode  int  // the code of the first service that failed for good
	failed    bool // a service failed for good
	debug     bool
	bootRoot  string // where boot applies tmpfiles and directories; "" skips it
}

func newSupervisor(cfg services.Config, logw io.Writer) *supervisor {
	s := &supervisor{cfg: cfg, logw: logw, self: os.Getpid(), leaders: map[int]*service{},
		claims: map[int]*service{}, restartC: make(chan *service, len(cfg.Services))}
	for _, spec := range cfg.Services {
		s.svcs = append(s.svcs, &service{spec: spec})
	}
	return s
}

func (s *supervisor) logf(format string, args ...any) {
	fmt.Fprintf(s.logw, "vm2image-init: "+format+"\n", args...)
}

// run starts every service and supervises them until all are gone after a stop; it returns the
// exit code.
func (s *supervisor) run() int {
	if s.self != 1 {
		if err := becomeSubreaper(); err != nil {
			s.logf("becoming a child subreaper: %v (orphans will not be reaped)", err)
		}
	}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, append(slices.Clone(forwarded), syscall.SIGCHLD)...)
	defer signal.Stop(sigs)
	if s.bootRoot != "" {
		s.boot(s.bootRoot)
	}
	for _, svc := range s.svcs {
		if s.stopping {
			break
		}
		s.start(svc)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for !s.stopping || s.anyAlive() {
		select {
		case sig := <-sigs:
			s.handle(sig.(syscall.Signal))
		case svc := <-s.restartC:
			if svc.pending && !s.stopping {
				svc.pending = false
				s.start(svc)
			}
		case <-tick.C:
			s.reap()
		case <-s.killC:
			s.killAll()
		case <-s.giveUpC:
			s.logf("processes still alive %s after SIGKILL: exiting anyway", killGrace)
			return s.code
		}
	}
	s.reap()
	return s.code
}

func (s *supervisor) handle(sig syscall.Signal) {
	switch sig {
	case syscall.SIGCHLD:
		s.reap()
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
		if s.stopping {
			s.forward(sig)
			return
		}
		s.logf("received %s: stopping every service", sigName(sig))
		s.requested = true
		s.decide(0)
		s.stop(sig)
	default:
		s.logf("forwarding %s", sigName(sig))
		s.forward(sig)
	}
}

// start starts svc's leader in a process group of its own.
func (s *supervisor) start(svc *service) {
	svc.done = false
	pid, err := spawn(svc.spec, s.tty, s.logf)
	if err != nil {
		code := 126
		switch {
		case errors.Is(err, errNotFound):
			code = 127
		case errors.Is(err, errPreFailed):
			code = 1
		}
		s.logf("starting %s: %v", svc.spec.Name, err)
		s.ended(svc, code)
		return
	}
	svc.pid, svc.pgid, svc.detached = pid, pid, false
	s.leaders[pid] = svc
	s.logf("starting %s (pid %d)", svc.spec.Name, pid)
}

// reap collects every exited child: service leaders, claimed orphans and anything else that
// was reparented to the init. Then it settles detached services whose processes are all gone.
func (s *supervisor) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 {
			break
		}
		if svc := s.leaders[pid]; svc != nil {
			delete(s.leaders, pid)
			s.leaderExited(svc, pid, ws)
		} else if svc := s.claims[pid]; svc != nil {
			delete(s.claims, pid)
			svc.lastCode = exitStatus(ws)
			s.claimOrphans(svc) // what it left behind was reparented to us
		}
	}
	for _, svc := range s.svcs {
		if svc.detached && !s.alive(svc) {
			svc.detached = false
			if !s.stopping {
				s.logf("%s: its last process is gone", svc.spec.Name)
				s.ended(svc, svc.lastCode)
			}
		}
	}
}

func (s *supervisor) leaderExited(svc *service, pid int, ws syscall.WaitStatus) {
	svc.pid = 0
	code := exitStatus(ws)
	svc.lastCode = code
	s.logf("%s (pid %d) %s", svc.spec.Name, pid, describe(ws))
	if s.stopping {
		svc.detached = s.alive(svc)
		return
	}
	if code == 0 {
		s.claimOrphans(svc)
		if s.alive(svc) {
			svc.detached = true
			s.logf("%s: pid %d exited 0 but its processes live on: tracking them", svc.spec.Name, pid)
			return
		}
	}
	s.ended(svc, code)
}

// claimOrphans counts the init's unknown children for the service whose process group they are
// in, else for svc (a daemon that called setsid left its group).
func (s *supervisor) claimOrphans(svc *service) {
	for _, c := range children(s.self) {
		if s.leaders[c.pid] != nil || s.claims[c.pid] != nil {
			continue
		}
		owner := svc
		for _, o := range s.svcs {
			if o.pgid == c.pgid {
				owner = o
			}
		}
		s.claims[c.pid] = owner
	}
}

// alive reports whether any process of svc lives: its leader, a member of its process group, or
// an orphan counted for it.
func (s *supervisor) alive(svc *service) bool {
	if svc.pid != 0 || groupAlive(svc.pgid) {
		return true
	}
	for _, o := range s.claims {
		if o == svc {
			return true
		}
	}
	return false
}

func (s *supervisor) anyAlive() bool { return slices.ContainsFunc(s.svcs, s.alive) }

// ended applies svc's restart policy after it ended with code. A service that is not
// restarted is done: when it is a main service, or it failed and the configuration says
// stop_on_failure, the others are stopped and the init exits with its code; otherwise the
// others keep running, and when the last service is done the init exits with the code of the
// first that failed (0 when none did).
func (s *supervisor) ended(svc *service, code int) {
	name := svc.spec.Name
	if svc.spec.IgnoreFailure && code != 0 {
		s.logf("%s: ignoring exit code %d (ignore_failure)", name, code)
		code = 0
	}
	p := svc.spec.Restart
	gaveUp := false
	if p == services.RestartAlways || p == services.RestartOnFailure && code != 0 || p == services.RestartOnSuccess && code == 0 {
		if delay, ok := s.restartDelay(svc); ok {
			svc.pending = true
			s.logf("restarting %s in %s", name, delay)
			time.AfterFunc(delay, func() { s.restartC <- svc })
			return
		}
		s.logf("%s restarted %d times within a minute: giving up", name, len(svc.restarts))
		gaveUp = true
	}
	svc.done = true
	failed := code != 0 || gaveUp
	if failed && code == 0 {
		code = 1
	}
	if failed && !s.failed {
		s.failed, s.failCode = true, code
	}
	switch {
	case svc.spec.Main:
		s.logf("%s (main) ended with code %d: stopping the other services", name, code)
		s.decide(code)
		s.stop(syscall.SIGTERM)
	case failed && s.cfg.StopOnFailure:
		s.logf("%s failed with code %d: stopping the other services (stop_on_failure)", name, code)
		s.decide(code)
		s.stop(syscall.SIGTERM)
	case s.allDone():
		s.logf("%s ended with code %d: it was the last service", name, code)
		s.decide(s.failCode)
		s.stop(syscall.SIGTERM)
	case failed:
		s.logf("%s failed with code %d: the other services keep running", name, code)
	default:
		s.logf("%s ended with code 0: the other services keep running", name)
	}
}

// allDone reports whether every service ended for good.
func (s *supervisor) allDone() bool {
	for _, o := range s.svcs {
		if !o.done {
			return false
		}
	}
	return true
}

// restartDelay records a restart and returns its backoff (restart_sec, 100ms by default,
// doubling per restart within the minute, at most 10s or restart_sec), or false when the
// service used up its restarts per minute.
func (s *supervisor) restartDelay(svc *service) (time.Duration, bool) {
	now := time.Now()
	svc.restarts = slices.DeleteFunc(svc.restarts, func(t time.Time) bool { return now.Sub(t) > time.Minute })
	if len(svc.restarts) >= s.cfg.RestartLimit() {
		return 0, false
	}
	svc.restarts = append(svc.restarts, now)
	base := cmp.Or(svc.spec.RestartSec, 100*time.Millisecond)
	return min(base<<(len(svc.restarts)-1), max(10*time.Second, base)), true
}

func (s *supervisor) decide(code int) {
	if !s.decided {
		s.code, s.decided = code, true
	}
}

// stop sends sig to every service and to every other child, and arms the stop timeout.
func (s *supervisor) stop(sig syscall.Signal) {
	if s.stopping {
		return
	}
	s.stopping = true
	for _, svc := range s.svcs {
		svc.pending = false
	}
	s.forwardStop(sig)
	s.signalOrphans(sig)
	s.killC = time.After(s.stopTimeout())
}

// stopTimeout is the longest of the configuration's and the services' stop timeouts.
func (s *supervisor) stopTimeout() time.Duration {
	d := s.cfg.Stop()
	for _, svc := range s.svcs {
		d = max(d, svc.spec.StopTimeout)
	}
	return d
}

// forwardStop sends a stop signal to every running service: its kill_signal instead of SIGTERM
// when it has one.
func (s *supervisor) forwardStop(sig syscall.Signal) {
	for _, svc := range s.svcs {
		if svc.pid == 0 && !svc.detached {
			continue
		}
		ss := sig
		if n := services.SignalNumber(svc.spec.KillSignal); n != 0 && sig == syscall.SIGTERM {
			ss = syscall.Signal(n)
		}
		_ = syscall.Kill(-svc.pgid, ss)
	}
	for pid := range s.claims {
		_ = syscall.Kill(pid, sig)
	}
}

func (s *supervisor) killAll() {
	if !s.anyAlive() {
		return
	}
	s.logf("stop timeout %s passed: killing what remains", s.stopTimeout())
	if s.requested {
		s.code = exitKilled
	}
	s.forward(syscall.SIGKILL)
	s.signalOrphans(syscall.SIGKILL)
	s.giveUpC = time.After(killGrace)
}

// forward sends sig to every running service's process group and to the orphans counted for it.
func (s *supervisor) forward(sig syscall.Signal) {
	for _, svc := range s.svcs {
		if svc.pid != 0 || svc.detached {
			_ = syscall.Kill(-svc.pgid, sig)
		}
	}
	for pid := range s.claims {
		_ = syscall.Kill(pid, sig)
	}
}

// signalOrphans sends sig to the init's children that belong to no service.
func (s *supervisor) signalOrphans(sig syscall.Signal) {
	for _, c := range children(s.self) {
		if s.leaders[c.pid] == nil && s.claims[c.pid] == nil {
			_ = syscall.Kill(c.pid, sig)
		}
	}
}

func exitStatus(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "was killed by " + sigName(ws.Signal())
	}
	return fmt.Sprintf("exited with code %d", ws.ExitStatus())
}

func sigName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT",
		syscall.SIGHUP: "SIGHUP", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2",
		syscall.SIGQUIT: "SIGQUIT", syscall.SIGKILL: "SIGKILL"}
	if n, ok := names[sig]; ok {
		return n
	}
	return sig.String()
}
