package services

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vm2image/vm2image/pkg/procs"
)

// proc builds a synthetic process. argv is split on "|" (titles keep their spaces); listen
// entries are "PROTO ADDR PORT".
func proc(pid, ppid, uid int, user, argv, exe string, listen ...string) procs.Process {
	p := procs.Process{PID: pid, PPID: ppid, UID: uid, GID: uid, EUID: uid, User: user, Group: user,
		Argv: strings.Split(argv, "|"), Exe: exe, Cwd: "/", Comm: comm(exe)}
	for _, l := range listen {
		f := strings.Fields(l)
		port, _ := strconv.Atoi(f[2])
		p.Listening = append(p.Listening, procs.Socket{Proto: f[0], Addr: f[1], Port: port})
	}
	return p
}

func comm(exe string) string {
	c := exe[strings.LastIndex(exe, "/")+1:]
	return c[:min(len(c), 15)]
}

func kthread(pid int, name string, listen ...string) procs.Process {
	p := proc(pid, 2, 0, "root", "", "", listen...)
	p.Argv, p.Kernel, p.Comm = nil, true, name
	return p
}

var systemd = proc(1, 0, 0, "root", "/sbin/init|splash", "/usr/lib/systemd/systemd")

func TestSelect(t *testing.T) {
	tests := []struct {
		name  string
		ps    []procs.Process
		opts  SelectOptions
		want  []Service
		notes []string // substrings, one per expected note, in order
	}{{
		name: "postgres tree",
		ps: []procs.Process{systemd,
			proc(500, 1, 105, "postgres", "/usr/lib/postgresql/15/bin/postgres|-D|/var/lib/postgresql/15/main|-c|config_file=/etc/postgresql/15/main/postgresql.conf",
				"/usr/lib/postgresql/15/bin/postgres", "tcp 127.0.0.1 5432", "tcp6 ::1 5432"),
			proc(501, 500, 105, "postgres", "postgres: 15/main: checkpointer ", "/usr/lib/postgresql/15/bin/postgres"),
			proc(502, 500, 105, "postgres", "postgres: 15/main: walwriter ", "/usr/lib/postgresql/15/bin/postgres"),
		},
		want: []Service{{Name: "postgres", Argv: []string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/var/lib/postgresql/15/main", "-c", "config_file=/etc/postgresql/15/main/postgresql.conf"},
			Exe: "/usr/lib/postgresql/15/bin/postgres", User: "postgres", UID: 105, GID: 105, Cwd: "/", Restart: "no",
			Ports: []Port{{"tcp", 5432, "127.0.0.1"}, {"tcp", 5432, "::1"}}}},
	}, {
		name: "sshd with a session that forwards X11",
		ps: []procs.Process{systemd,
			proc(600, 1, 0, "root", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", "/usr/sbin/sshd", "tcp 0.0.0.0 22", "tcp6 :: 22"),
			proc(601, 600, 0, "root", "sshd: alice [priv]", "/usr/sbin/sshd"),
			proc(602, 601, 1000, "alice", "sshd: alice@pts/0", "/usr/sbin/sshd", "tcp 127.0.0.1 6010"),
			proc(603, 602, 1000, "alice", "-bash", "/usr/bin/bash"),
		},
		want: []Service{{Name: "sshd", Argv: []string{"/usr/sbin/sshd", "-D"}, Exe: "/usr/sbin/sshd", User: "root", Cwd: "/",
			Restart: "no", Ports: []Port{{"tcp", 22, "0.0.0.0"}, {"tcp", 22, "::"}}}},
		notes: []string{"leaving out sshd (pid 602, listening on tcp/6010): part of a login session"},
	}, {
		name: "systemd as PID 1 holding sockets",
		ps: []procs.Process{
			proc(1, 0, 0, "root", "/sbin/init", "/usr/lib/systemd/systemd", "tcp 0.0.0.0 631", "tcp 0.0.0.0 5355"),
			proc(700, 1, 0, "root", "/usr/sbin/cupsd|-l", "/usr/sbin/cupsd", "tcp 0.0.0.0 631"),
			proc(701, 1, 991, "systemd-resolve", "/lib/systemd/systemd-resolved", "/usr/lib/systemd/systemd-resolved", "udp 127.0.0.53 53"),
		},
		want: []Service{{Name: "cupsd", Argv: []string{"/usr/sbin/cupsd", "-l"}, Exe: "/usr/sbin/cupsd", User: "root", Cwd: "/",
			Restart: "no", Ports: []Port{{"tcp", 631, "0.0.0.0"}}}},
		notes: []string{"leaving out init (pid 1, listening on tcp/631,tcp/5355): the init system; it holds these sockets for socket activation",
			"leaving out systemd-resolved (pid 701, listening on udp/53): the VM's own plumbing"},
	}, {
		name:  "a kernel thread and the agent",
		ps:    []procs.Process{kthread(300, "nfsd", "tcp 0.0.0.0 2049"), proc(301, 1, 0, "root", "/tmp/a|--listen|:49153", "/tmp/vm2image-agent", "tcp 0.0.0.0 49153"), proc(302, 1, 0, "root", "/opt/x/agent2", "/opt/x/agent2", "tcp 0.0.0.0 1")},
		opts:  SelectOptions{AgentPID: 302},
		notes: []string{"pid 300, listening on tcp/2049): kernel thread", "pid 301, listening on tcp/49153): the vm2image agent", "pid 302, listening on tcp/1): the vm2image agent"},
	}, {
		name: "duplicate names",
		ps: []procs.Process{
			proc(800, 1, 1001, "app", "python3|/srv/b/app.py", "/usr/bin/python3.11", "tcp 0.0.0.0 9001"),
			proc(801, 1, 1001, "app", "python3|/srv/a/app.py", "/usr/bin/python3.11", "tcp 0.0.0.0 9000"),
			proc(802, 1, 1001, "app", "python3|-m|http.server|8080", "/usr/bin/python3.11", "tcp6 :: 8080"),
			proc(803, 1, 0, "root", "/opt/app", "/opt/app", "udp 0.0.0.0 9999"),
		},
		want: []Service{
			{Name: "app", Argv: []string{"python3", "/srv/a/app.py"}, Exe: "/usr/bin/python3.11", User: "app", UID: 1001, GID: 1001, Cwd: "/", Restart: "no", Ports: []Port{{"tcp", 9000, "0.0.0.0"}}},
			{Name: "app-2", Argv: []string{"python3", "/srv/b/app.py"}, Exe: "/usr/bin/python3.11", User: "app", UID: 1001, GID: 1001, Cwd: "/", Restart: "no", Ports: []Port{{"tcp", 9001, "0.0.0.0"}}},
			{Name: "app-3", Argv: []string{"/opt/app"}, Exe: "/opt/app", User: "root", Cwd: "/", Restart: "no", Ports: []Port{{"udp", 9999, "0.0.0.0"}}},
			{Name: "http.server", Argv: []string{"python3", "-m", "http.server", "8080"}, Exe: "/usr/bin/python3.11", User: "app", UID: 1001, GID: 1001, Cwd: "/", Restart: "no", Ports: []Port{{"tcp", 8080, "::"}}},
		},
	}, {
		name: "nginx title with -g, excluded redis, exclusion of a parent leaves the tree out",
		ps: []procs.Process{
			proc(900, 1, 0, "root", "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;", "/usr/sbin/nginx", "tcp 0.0.0.0 80"),
			proc(901, 900, 33, "www-data", "nginx: worker process", "/usr/sbin/nginx", "tcp 0.0.0.0 80"),
			proc(910, 1, 104, "redis", "/usr/bin/redis-server 127.0.0.1:6379", "/usr/bin/redis-server", "tcp 127.0.0.1 6379"),
			proc(920, 1, 0, "root", "/usr/bin/supervise|web", "/usr/bin/supervise"),
			proc(921, 920, 0, "root", "/usr/bin/supervise|worker", "/usr/bin/supervise", "tcp 0.0.0.0 8000"),
		},
		opts: SelectOptions{Exclude: []string{"redis-server", `/usr/bin/supervise web`}},
		want: []Service{{Name: "nginx", Argv: []string{"/usr/sbin/nginx", "-g", "daemon on; master_process on;"}, Exe: "/usr/sbin/nginx",
			User: "root", Cwd: "/", Restart: "no", Ports: []Port{{"tcp", 80, "0.0.0.0"}},
			Foreground: []string{"/usr/sbin/nginx", "-g", "daemon off; master_process on;"}}},
		notes: []string{"pid 910, listening on tcp/6379): excluded", "pid 921, listening on tcp/8000): its parent supervise (pid 920) is left out: excluded"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var notes []string
			tt.opts.Notef = func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }
			got := Select(tt.ps, tt.opts)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
			if len(notes) != len(tt.notes) {
				t.Fatalf("notes %q, want %d like %q", notes, len(tt.notes), tt.notes)
			}
			for i, n := range tt.notes {
				if !strings.Contains(notes[i], n) {
					t.Errorf("note %d %q lacks %q", i, notes[i], n)
				}
			}
		})
	}
}

func TestForeground(t *testing.T) {
	tests := []struct {
		argv, exe string
		wantArgv  string // "|"-joined; "" = the argv as given
		wantFg    string // "" = none
	}{
		{"nginx: master process /usr/sbin/nginx", "/usr/sbin/nginx", "/usr/sbin/nginx", "/usr/sbin/nginx|-g|daemon off;"},
		{"nginx: master process nginx -c /etc/n.conf -g pid /run/n.pid; daemon on;", "/usr/sbin/nginx", "/usr/sbin/nginx|-c|/etc/n.conf|-g|pid /run/n.pid; daemon on;", "/usr/sbin/nginx|-c|/etc/n.conf|-g|daemon off; pid /run/n.pid;"},
		{"/usr/sbin/nginx|-g|daemon off;", "/usr/sbin/nginx", "", ""},
		{"/usr/sbin/apache2|-k|start", "/usr/sbin/apache2", "", "/usr/sbin/apache2ctl|-D|FOREGROUND"},
		{"/usr/sbin/httpd|-k|start", "/usr/sbin/httpd", "", "/usr/sbin/httpd|-DFOREGROUND"},
		{"/usr/sbin/sshd", "/usr/sbin/sshd", "", "/usr/sbin/sshd|-D"},
		{"busybox|httpd|-p|8080|-h|/www", "/usr/bin/busybox", "", "busybox|httpd|-f|-p|8080|-h|/www"},
		{"httpd|-p|8080", "/bin/busybox", "", "httpd|-f|-p|8080"},
		{"busybox|httpd|-f|-p|8080", "/usr/bin/busybox", "", ""},
		{"php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)", "/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm8.2|--fpm-config|/etc/php/8.2/fpm/php-fpm.conf", "/usr/sbin/php-fpm8.2|--fpm-config|/etc/php/8.2/fpm/php-fpm.conf|-F"},
		{"/usr/sbin/dnsmasq|-x|/run/dnsmasq.pid", "/usr/sbin/dnsmasq", "", "/usr/sbin/dnsmasq|-x|/run/dnsmasq.pid|-k"},
		{"/usr/sbin/cron", "/usr/sbin/cron", "", "/usr/sbin/cron|-f"},
		{"/usr/bin/memcached|-d|-m|64", "/usr/bin/memcached", "", "/usr/bin/memcached|-m|64"},
		{"/usr/bin/redis-server 127.0.0.1:6379", "/usr/bin/redis-server", "/usr/bin/redis-server|/etc/redis/redis.conf", "/usr/bin/redis-server|/etc/redis/redis.conf|--daemonize|no"},
		{"/usr/sbin/exim4|-bd|-q30m", "/usr/sbin/exim4", "", "/usr/sbin/exim4|-bdf|-q30m"},
		{"myd: accepting connections", "/opt/myd/bin/myd", "/opt/myd/bin/myd", ""},
		{"/opt/unknown|--daemon", "/opt/unknown", "", ""},
	}
	for _, tt := range tests {
		p := proc(10, 1, 0, "root", tt.argv, tt.exe)
		argv, fg := commands(p)
		want := tt.wantArgv
		if want == "" {
			want = tt.argv
		}
		if got := strings.Join(argv, "|"); got != want {
			t.Errorf("%q: argv %q, want %q", tt.argv, got, want)
		}
		if got := strings.Join(fg, "|"); got != tt.wantFg {
			t.Errorf("%q: foreground %q, want %q", tt.argv, got, tt.wantFg)
		}
	}
}

func TestServiceNames(t *testing.T) {
	tests := []struct{ argv, exe, want string }{
		{"nginx: master process /usr/sbin/nginx", "/usr/sbin/nginx", "nginx"},
		{"busybox|httpd|-p|80", "/usr/bin/busybox", "busybox-httpd"},
		{"java|-Xmx1g|-jar|/srv/Shop.jar", "/usr/lib/jvm/bin/java", "shop"},
		{"node|server.js", "/usr/bin/node", "server"},
		{"sh|-c|exec /srv/run-me --flag", "/usr/bin/dash", "run-me"},
		{"/opt/My App/Server", "/opt/My App/Server", "server"},
		{"", "/usr/sbin/x (deleted)", "x"},
		{"php-fpm: master process (/etc/php.conf)", "/usr/sbin/php-fpm8.2", "php-fpm"},
	}
	for _, tt := range tests {
		if got := serviceName(proc(1, 0, 0, "root", tt.argv, tt.exe)); got != tt.want {
			t.Errorf("serviceName(%q, %q) = %q, want %q", tt.argv, tt.exe, got, tt.want)
		}
	}
	if got := dedupe([]string{"a", "a", "a-2", "b", "a"}); strings.Join(got, ",") != "a,a-2,a-2-2,b,a-3" {
		t.Errorf("dedupe: %v", got)
	}
}

func TestCleanEnv(t *testing.T) {
	in := []string{"ocess /usr/sbin/nginx", "", "PATH=/bin", "LANG=C.UTF-8", "PATH=/other", "SSH_CONNECTION=1 2 3 4",
		"INVOCATION_ID=abc", "LISTEN_FDS=2", "A=", "=x", "1BAD=1", "DB.URL=x"}
	want := []string{"PATH=/bin", "LANG=C.UTF-8", "A=", "DB.URL=x"}
	if diff := cmp.Diff(want, cleanEnv(in)); diff != "" {
		t.Errorf("cleanEnv (-want +got):\n%s", diff)
	}
	ps := []procs.Process{proc(5, 1, 0, "root", "/srv/d", "/srv/d", "tcp 0.0.0.0 1")}
	ps[0].Env = in
	if s := Select(ps, SelectOptions{}); s[0].Env != nil {
		t.Errorf("environment copied without IncludeEnv: %q", s[0].Env)
	}
	if s := Select(ps, SelectOptions{IncludeEnv: true}); !cmp.Equal(s[0].Env, want) {
		t.Errorf("IncludeEnv: %q", s[0].Env)
	}
}

func TestPublishedPorts(t *testing.T) {
	cfg := Config{Services: []Service{
		{Ports: []Port{{"tcp", 80, "0.0.0.0"}, {"tcp", 80, "::"}, {"udp", 53, "0.0.0.0"}}},
		{Ports: []Port{{"tcp", 8080, "127.0.0.1"}, {"tcp", 25, "::ffff:127.0.0.1"}, {"tcp", 443, "10.0.0.5"}}},
	}}
	want := []Port{{"tcp", 80, ""}, {"tcp", 443, ""}, {"udp", 53, ""}}
	if diff := cmp.Diff(want, cfg.PublishedPorts()); diff != "" {
		t.Errorf("PublishedPorts (-want +got):\n%s", diff)
	}
}
