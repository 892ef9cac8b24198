//go:build linux

// Command vm2image-init is the entrypoint of images vm2image writes: it starts every service of
// /.vm2image/services.yaml with its own argv, user, groups, working directory and environment,
// each in its own process group; forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT
// to every service; reaps every zombie (as PID 1 it inherits all orphans; elsewhere it makes
// itself a child subreaper); restarts services by their policy (restart, restart_sec, with a
// doubling backoff and at most restarts_per_minute restarts); and exits when the services are
// done (see the exit codes).
//
// Before the services start, as PID 1 (or with --root), it recreates the boot-time state a VM's
// systemd makes and an image lacks: the image's tmpfiles.d lines for /run, /var/run and /tmp
// (types d, D, f, F, L) and each service's directories (RuntimeDirectory= and its kind) with
// their modes and owners. Each service's exec_start_pre commands run in order before it, its
// env_files are read at start inside the container, its umask, group and supplementary groups
// applied. Log lines name the service.
//
// Usage:
//
//	vm2image-init [--config FILE] [--check] [--root DIR] [COMMAND [ARG]...]
//
// With a COMMAND (docker run IMAGE sh), the init runs that command as its only service instead
// of services.yaml, still forwarding signals and reaping; on a terminal the command gets it.
//
// A service runs as the uid and gid of services.yaml (a user name given with uid and gid 0, as
// in a hand-written file, is looked up in the image's /etc/passwd), with the user's groups of
// /etc/group as supplementary groups, and PATH added to its environment when absent. A service
// whose first process exits 0 while others of its process group, or orphans it left to the
// init, live on (a daemon that forked into the background) runs until they are gone.
//
// A service that ends for good (not restarted) does not stop the others, unless it is a main
// service (main: true) or it failed and the configuration has stop_on_failure: true; the init
// exits once every service is done.
//
// Exit codes:
//
//	0        stopped by SIGTERM, SIGINT or SIGQUIT with every service gone within the stop
//	         timeout (what `docker stop` sees), or every service ended with 0
//	N        the deciding service's code: a main service that ended, the first service that
//	         failed under stop_on_failure, or else (every service done) the first service
//	         that failed; 128+S when killed by signal S; 126 when it could not be started,
//	         127 when its program was not found, 1 when an exec_start_pre failed or when a
//	         service that exited 0 used up its restarts
//	137      a requested stop had to SIGKILL services after the stop timeout
//	2        unusable configuration (unreadable, invalid, or no services)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/vm2image/vm2image/pkg/services"
)

// Exit codes of the init itself (the others come from services).
const (
	exitConfig = 2
	exitKilled = 128 + 9
)

func main() {
	fs := flag.NewFlagSet("vm2image-init", flag.ContinueOnError)
	configPath := fs.String("config", services.ServicesPath, "the services configuration to run")
	check := fs.Bool("check", false, "read and validate the configuration, print the services, and exit")
	root := fs.String("root", "", "apply tmpfiles.d and service directories under DIR (default: / when PID 1, else nowhere)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(exitConfig)
	}
	cfg, err := loadConfig(*configPath, fs.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm2image-init: %v\n", err)
		os.Exit(exitConfig)
	}
	if *check {
		for _, s := range cfg.Services {
			fmt.Printf("%s\tuid=%d gid=%d cwd=%s restart=%s\t%q\n", s.Name, s.UID, s.GID, s.Cwd, s.Restart, s.Command())
		}
		return
	}
	s := newSupervisor(cfg, os.Stderr)
	s.tty = fs.NArg() > 0 && isTerminal(0)
	s.debug = os.Getenv("VM2IMAGE_INIT_DEBUG") != ""
	s.bootRoot = *root
	if s.bootRoot == "" && os.Getpid() == 1 {
		s.bootRoot = "/"
	}
	os.Exit(s.run())
}

// loadConfig reads the configuration, or makes one service of args when there are any.
func loadConfig(path string, args []string) (services.Config, error) {
	if len(args) > 0 {
		cwd, err := os.Getwd()
		if err != nil {
			cwd = "/"
		}
		return services.Config{Services: []services.Service{{
			Name: "command", Argv: args, UID: os.Getuid(), GID: os.Getgid(), Cwd: cwd, Env: os.Environ(),
			Restart: services.RestartNo,
		}}}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return services.Config{}, fmt.Errorf("reading the configuration: %w", err)
	}
	defer f.Close()
	cfg, err := services.ReadServicesYAML(f)
	if err != nil {
		return services.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(cfg.Services) == 0 {
		return services.Config{}, errors.New(path + " lists no services; pass a command to run instead")
	}
	return cfg, nil
}
