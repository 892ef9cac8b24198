package services

import (
	"path"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/pkg/procs"
)

// daemon is what the selection knows about one well-known program: how to recover its real
// command from a rewritten process title, and how to keep it in the foreground under the init.
// README.md carries the same table for people.
type daemon struct {
	// names are the programs it matches (see program); a trailing '*' matches a prefix.
	names []string
	// recover returns the real command of a process whose title the program rewrote, or nil
	// when argv is not a rewritten title.
	recover func(p procs.Process) []string
	// foreground returns the command that stays in the foreground; nil: the command as is.
	foreground func(cmd []string, p procs.Process) []string
}

// daemons is the table of well-known daemons. Programs it does not name run with their argv as
// found; when they detach anyway, the init keeps the service alive while its processes live.
var daemons = []daemon{
	{names: []string{"nginx"}, recover: recoverNginx, foreground: nginxForeground},
	{names: []string{"apache2"}, foreground: apache2Foreground},
	{names: []string{"httpd"}, foreground: func(c []string, _ procs.Process) []string {
		c = removePair(c, "-k", "start")
		if slices.Contains(c, "-DFOREGROUND") || containsPair(c, "-D", "FOREGROUND") {
			return c
		}
		return append(c, "-DFOREGROUND")
	}},
	{names: []string{"sshd"}, recover: recoverSSHD, foreground: addFlag("-D")},
	{names: []string{"postgres", "postmaster"}}, // the postmaster stays in the foreground
	{names: []string{"mysqld", "mariadbd"}},     // idem
	{names: []string{"redis-server"}, recover: recoverRedis, // title "/usr/bin/redis-server 127.0.0.1:6379"
		foreground: func(c []string, _ procs.Process) []string {
			if containsPair(c, "--daemonize", "no") {
				return c
			}
			return append(c, "--daemonize", "no")
		}},
	{names: []string{"memcached"}, foreground: func(c []string, _ procs.Process) []string {
		return removeArgs(c, "-d", "--daemon")
	}},
	{names: []string{"busybox-httpd"}, foreground: busyboxForeground("-f")},
	{names: []string{"busybox-crond"}, foreground: busyboxForeground("-f")},
	{names: []string{"busybox-syslogd"}, foreground: busyboxForeground("-n")},
	{names: []string{"busybox-udhcpd"}, foreground: busyboxForeground("-f")},
	{names: []string{"busybox-inetd"}, foreground: busyboxForeground("-f")},
	{names: []string{"php-fpm*"}, recover: recoverPHPFPM, foreground: addFlag("-F", "--nodaemonize")},
	{names: []string{"dnsmasq"}, foreground: addFlag("-k", "--keep-in-foreground", "-d", "--no-daemon")},
	{names: []string{"cron", "crond"}, foreground: addFlag("-f")},
	{names: []string{"named"}, foreground: addFlag("-f", "-g")},
	{names: []string{"rsyslogd"}, foreground: addFlag("-n")},
	{names: []string{"lighttpd"}, foreground: addFlag("-D")},
	{names: []string{"haproxy"}, foreground: func(c []string, _ procs.Process) []string {
		return removeArgs(c, "-D")
	}},
	{names: []string{"squid"}, foreground: addFlag("--foreground", "-N")},
	{names: []string{"chronyd"}, foreground: addFlag("-n", "-d")},
	{names: []string{"exim4", "exim"}, foreground: func(c []string, _ procs.Process) []string {
		out := slices.Clone(c)
		for i, a := range out {
			if a == "-bd" {
				out[i] = "-bdf"
			}
		}
		return out
	}},
}

// lookupDaemon returns the table's entry for a program, if any.
func lookupDaemon(prog string) (daemon, bool) {
	for _, d := range daemons {
		for _, n := range d.names {
			if n == prog || strings.HasSuffix(n, "*") && strings.HasPrefix(prog, strings.TrimSuffix(n, "*")) {
				return d, true
			}
		}
	}
	return daemon{}, false
}

// commands returns a process's real command and, when it differs, its foreground form.
func commands(p procs.Process) (argv, foreground []string) {
	argv = p.Argv
	exe := strings.TrimSuffix(p.Exe, " (deleted)") // replaced on disk since it started
	if (len(argv) == 0 || argv[0] == "") && exe != "" {
		argv = []string{exe}
	}
	d, known := lookupDaemon(program(p))
	if known && d.recover != nil {
		if rec := d.recover(p); rec != nil {
			argv = rec
		}
	} else if isTitle(argv) && exe != "" {
		// An unknown program rewrote its title: its arguments are lost, its executable is not.
		argv = []string{exe}
	}
	if known && d.foreground != nil {
		if fg := d.foreground(slices.Clone(argv), p); !slices.Equal(fg, argv) {
			foreground = fg
		}
	}
	return slices.Clone(argv), foreground
}

// isTitle reports whether argv looks like a rewritten process title rather than a command: one
// element holding spaces, or "prog: something".
func isTitle(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	prog, _, colon := strings.Cut(argv[0], ": ")
	return colon && !strings.Contains(prog, " ") || len(argv) == 1 && strings.Contains(argv[0], " ")
}

// exeOr returns the process's executable, else fallback.
func exeOr(p procs.Process, fallback string) string {
	if p.Exe != "" && !strings.HasSuffix(p.Exe, " (deleted)") {
		return p.Exe
	}
	return fallback
}

// recoverNginx reads "nginx: master process /usr/sbin/nginx -c FILE -g DIRECTIVES": nginx joins
// its original argv with spaces; -g takes every word up to the next flag.
func recoverNginx(p procs.Process) []string {
	title, ok := strings.CutPrefix(strings.Join(p.Argv, " "), "nginx: master process ")
	if !ok {
		return nil
	}
	words := strings.Fields(title)
	if len(words) == 0 {
		return nil
	}
	out := []string{exeOr(p, words[0])}
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch w {
		case "-c", "-p", "-e":
			if i+1 < len(words) {
				out = append(out, w, words[i+1])
				i++
			}
		case "-g":
			j := i + 1
			for j < len(words) && !slices.Contains([]string{"-c", "-p", "-e", "-g", "-q"}, words[j]) {
				j++
			}
			out = append(out, w, strings.Join(words[i+1:j], " "))
			i = j - 1
		default:
			out = append(out, w)
		}
	}
	return out
}

// nginxForeground sets "daemon off;" in front of the -g directives, dropping any daemon directive
// already there. (A "daemon" line in nginx.conf itself would make nginx refuse the duplicate.)
func nginxForeground(c []string, _ procs.Process) []string {
	out := []string{c[0]}
	var directives []string
	for i := 1; i < len(c); i++ {
		if c[i] == "-g" && i+1 < len(c) {
			for d := range strings.SplitSeq(c[i+1], ";") {
				if d = strings.TrimSpace(d); d != "" && !strings.HasPrefix(d, "daemon ") {
					directives = append(directives, d+";")
				}
			}
			i++
			continue
		}
		out = append(out, c[i])
	}
	return append(out, "-g", strings.Join(append([]string{"daemon off;"}, directives...), " "))
}

// apache2Foreground runs Debian's apache2ctl beside apache2: it reads /etc/apache2/envvars,
// which Debian's configuration needs, then execs apache2 in the foreground.
func apache2Foreground(c []string, p procs.Process) []string {
	exe := exeOr(p, c[0])
	if !strings.HasPrefix(exe, "/") {
		return append(removePair(c, "-k", "start"), "-D", "FOREGROUND")
	}
	return []string{path.Join(path.Dir(exe), "apache2ctl"), "-D", "FOREGROUND"}
}

// recoverSSHD reads the listener's title "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100
// startups".
func recoverSSHD(p procs.Process) []string {
	title, ok := strings.CutPrefix(strings.Join(p.Argv, " "), "sshd: ")
	if !ok {
		return nil
	}
	cmd, _, _ := strings.Cut(title, " [listener]")
	words := strings.Fields(cmd)
	if len(words) == 0 {
		return nil
	}
	return append([]string{exeOr(p, words[0])}, words[1:]...)
}

// recoverRedis reads "/usr/bin/redis-server 127.0.0.1:6379": the configuration file's name is
// lost, so the Debian and Fedora default /etc/redis/redis.conf stands in.
func recoverRedis(p procs.Process) []string {
	if !isTitle(p.Argv) {
		return nil
	}
	return []string{exeOr(p, "/usr/bin/redis-server"), "/etc/redis/redis.conf"}
}

// recoverPHPFPM reads "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)".
func recoverPHPFPM(p procs.Process) []string {
	title := strings.Join(p.Argv, " ")
	if !strings.Contains(title, ": master process") {
		return nil
	}
	out := []string{exeOr(p, "php-fpm")}
	if _, conf, ok := strings.Cut(title, "("); ok {
		if conf, _, ok = strings.Cut(conf, ")"); ok && conf != "" {
			out = append(out, "--fpm-config", conf)
		}
	}
	return out
}

// addFlag returns a foreground function that appends flags[0] unless one of flags is present.
func addFlag(flags ...string) func([]string, procs.Process) []string {
	return func(c []string, _ procs.Process) []string {
		for _, f := range flags {
			if slices.Contains(c[1:], f) {
				return c
			}
		}
		return append(c, flags[0])
	}
}

// busyboxForeground inserts flag right after the applet's name ("busybox httpd -f ...").
func busyboxForeground(flag string) func([]string, procs.Process) []string {
	return func(c []string, _ procs.Process) []string {
		at := 1
		if path.Base(c[0]) == "busybox" {
			at = 2
		}
		if at > len(c) || slices.Contains(c[at:], flag) {
			return c
		}
		return slices.Insert(c, at, flag)
	}
}

// removeArgs drops every element equal to one of args.
func removeArgs(c []string, args ...string) []string {
	return slices.DeleteFunc(slices.Clone(c), func(a string) bool { return slices.Contains(args, a) })
}

// removePair drops the first "a b" pair of elements ("-k start").
func removePair(c []string, a, b string) []string {
	for i := 0; i+1 < len(c); i++ {
		if c[i] == a && c[i+1] == b {
			return slices.Delete(slices.Clone(c), i, i+2)
		}
	}
	return c
}

func containsPair(c []string, a, b string) bool {
	for i := 0; i+1 < len(c); i++ {
		if c[i] == a && c[i+1] == b {
			return true
		}
	}
	return false
}
