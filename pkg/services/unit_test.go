package services

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func unitFS(files map[string]string, links map[string]string) *MemFS {
	m := NewMemFS()
	for p, c := range files {
		m.AddFile(p, []byte(c))
	}
	for p, t := range links {
		m.AddSymlink(p, t)
	}
	return m
}

func TestLoadUnitOverrideOrder(t *testing.T) {
	m := unitFS(map[string]string{
		"/usr/lib/systemd/system/app.service":           "[Service]\nExecStart=/usr/bin/old\nUser=nobody\n",
		"/etc/systemd/system/app.service":               "[Service]\nExecStart=/usr/bin/app --flag \\\n  # a comment inside\n  second\nUser=app\nEnvironment=A=1\n",
		"/usr/lib/systemd/system/app.service.d/20.conf": "[Service]\nEnvironment=B=vendor\n",
		"/etc/systemd/system/app.service.d/20.conf":     "[Service]\nEnvironment=B=admin\n",
		"/etc/systemd/system/app.service.d/10.conf":     "[Service]\nExecStart=\nExecStart=/usr/bin/app --dropin\n",
		"/etc/systemd/system/service.d/00.conf":         "; every service\n[Service]\nUMask=0027\n",
	}, map[string]string{"/lib": "usr/lib"})
	u, err := LoadUnit(m, "app.service")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc/systemd/system/app.service", "/etc/systemd/system/service.d/00.conf",
		"/etc/systemd/system/app.service.d/10.conf", "/etc/systemd/system/app.service.d/20.conf"}
	if !reflect.DeepEqual(u.Files, want) {
		t.Fatalf("files %q, want %q", u.Files, want)
	}
	if got := u.Values("Service", "ExecStart"); !reflect.DeepEqual(got, []string{"/usr/bin/app --dropin"}) {
		t.Errorf("ExecStart after reset = %q", got)
	}
	if got := u.Values("Service", "Environment"); !reflect.DeepEqual(got, []string{"A=1", "B=admin"}) {
		t.Errorf("Environment = %q (the /etc drop-in must shadow the vendor one of the same name)", got)
	}
	if u.Value("Service", "UMask") != "0027" || u.Value("Service", "User") != "app" {
		t.Errorf("UMask %q User %q", u.Value("Service", "UMask"), u.Value("Service", "User"))
	}
}

func TestLoadUnitContinuation(t *testing.T) {
	var u Unit
	if err := u.ParseUnit("x", []byte("[Service]\nExecStart=/bin/a \\\n# skipped\n b \\\n c\n")); err != nil {
		t.Fatal(err)
	}
	if got := u.Value("Service", "ExecStart"); got != "/bin/a  b  c" {
		t.Errorf("continued line %q", got)
	}
	if err := u.ParseUnit("y", []byte("[Service]\nnot an assignment\n")); err == nil {
		t.Error("a line without '=' parsed")
	}
}

func TestLoadUnitTemplateMaskedAlias(t *testing.T) {
	m := unitFS(map[string]string{
		"/lib/systemd/system/pg@.service":          "[Service]\nExecStart=/usr/bin/pg %i %I %n %N %p %t/%i\n",
		"/lib/systemd/system/pg@.service.d/a.conf": "[Service]\nUser=postgres\n",
		"/lib/systemd/system/real.service":         "[Service]\nExecStart=/bin/real\n",
	}, map[string]string{
		"/etc/systemd/system/masked.service":                         "/dev/null",
		"/etc/systemd/system/alias.service":                          "/lib/systemd/system/real.service",
		"/etc/systemd/system/multi-user.target.wants/real.service":   "/lib/systemd/system/real.service",
		"/etc/systemd/system/multi-user.target.wants/masked.service": "/lib/systemd/system/real.service",
	})
	u, err := LoadUnit(m, "pg@15-main.service")
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromUnit(u, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/pg", "15-main", "15/main", "pg@15-main.service", "pg@15-main", "pg", "/run/15-main"}
	if !reflect.DeepEqual(s.Argv, want) || s.User != "postgres" || s.Name != "pg-15-main" {
		t.Errorf("template instance: argv %q user %q name %q", s.Argv, s.User, s.Name)
	}
	if _, err := LoadUnit(m, "masked.service"); !errors.Is(err, ErrMasked) {
		t.Errorf("masked unit: %v", err)
	}
	if _, err := LoadUnit(m, "none.service"); !errors.Is(err, ErrNoUnit) {
		t.Errorf("missing unit: %v", err)
	}
	if u, err := LoadUnit(m, "alias.service"); err != nil || u.Value("Service", "ExecStart") != "/bin/real" {
		t.Errorf("alias: %v", err)
	}
	if got := EnabledUnits(m); !reflect.DeepEqual(got, []string{"real.service"}) {
		t.Errorf("enabled %q", got)
	}
}

func parseService(t *testing.T, text string, base *Service) Service {
	t.Helper()
	u := &Unit{Name: "app.service"}
	if err := u.ParseUnit("app.service", []byte(text)); err != nil {
		t.Fatal(err)
	}
	s, err := FromUnit(u, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := (Config{Services: []Service{s}}).Validate(); err != nil {
		t.Fatalf("invalid: %v", err)
	}
	return s
}

func TestFromUnitDirectives(t *testing.T) {
	s := parseService(t, `[Unit]
Description=x
[Service]
Type=simple
ExecStartPre=-/bin/mkdir -p "/run/a b"
ExecStartPre=+/usr/bin/setup 'x y' \x41
ExecStart=-/usr/bin/app --port=${PORT} $OPTS
User=app
Group=appgrp
SupplementaryGroups=www-data
SupplementaryGroups=ssl-cert adm
WorkingDirectory=/srv/app
Environment="GREETING=hello world" PORT=8000
Environment=OPTS=-v
EnvironmentFile=-/etc/default/app
EnvironmentFile=/etc/app.env
UMask=0027
RuntimeDirectory=app app/sub
RuntimeDirectoryMode=0750
StateDirectory=app
CacheDirectory=app
LogsDirectory=app
ConfigurationDirectory=app
Restart=on-abnormal
RestartSec=1min 30s
KillSignal=SIGINT
TimeoutStopSec=20
`, nil)
	want := Service{Name: "app", Source: SourceUnit, Unit: "app.service", ExpandEnv: true,
		Argv: []string{"/usr/bin/app", "--port=${PORT}", "$OPTS"}, IgnoreFailure: true,
		Pre: []Command{{Argv: []string{"/bin/mkdir", "-p", "/run/a b"}, IgnoreFailure: true},
			{Argv: []string{"/usr/bin/setup", "x y", "A"}, Privileged: true}},
		User: "app", Group: "appgrp", SupplementaryGroups: []string{"www-data", "ssl-cert", "adm"},
		Cwd: "/srv/app", Env: []string{"GREETING=hello world", "PORT=8000", "OPTS=-v"},
		EnvFiles: []EnvFile{{Path: "/etc/default/app", Optional: true}, {Path: "/etc/app.env"}},
		UMask:    "0027",
		Directories: []Directory{{Path: "/run/app", Mode: "0750", Owned: true, Runtime: true},
			{Path: "/run/app/sub", Mode: "0750", Owned: true, Runtime: true},
			{Path: "/var/lib/app", Mode: "0755", Owned: true}, {Path: "/var/cache/app", Mode: "0755", Owned: true},
			{Path: "/var/log/app", Mode: "0755", Owned: true}, {Path: "/etc/app", Mode: "0755"}},
		Restart: RestartOnFailure, RestartSec: 90 * time.Second, KillSignal: "SIGINT", StopTimeout: 20 * time.Second,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
}

func TestFromUnitForkingKeepsProcess(t *testing.T) {
	base := &Service{Name: "nginx", Argv: []string{"/usr/sbin/nginx", "-g", "daemon on; master_process on;"},
		Foreground: []string{"/usr/sbin/nginx", "-g", "daemon off; master_process on;"}, UID: 0, Cwd: "/",
		Ports: []Port{{Proto: "tcp", Port: 80, Addr: "0.0.0.0"}}}
	s := parseService(t, "[Service]\nType=forking\nExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'\n"+
		"ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'\nRestart=always\n", base)
	if !reflect.DeepEqual(s.Command(), base.Foreground) || !reflect.DeepEqual(s.Ports, base.Ports) {
		t.Errorf("forking: command %q ports %v", s.Command(), s.Ports)
	}
	if len(s.Pre) != 1 || !s.Pre[0].Privileged || s.Restart != RestartAlways {
		t.Errorf("forking: pre %+v restart %q", s.Pre, s.Restart)
	}
	// Without a process, a known daemon's unit command gets its foreground form.
	s = parseService(t, "[Service]\nType=forking\nExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'\n", nil)
	if len(s.Foreground) == 0 {
		t.Errorf("no foreground form for nginx from its unit: %q", s.Command())
	}
}

func TestFromUnitRestartPolicies(t *testing.T) {
	for in, want := range map[string]string{"no": RestartNo, "always": RestartAlways, "on-success": RestartOnSuccess,
		"on-failure": RestartOnFailure, "on-watchdog": RestartOnFailure, "on-abort": RestartOnFailure} {
		if s := parseService(t, "[Service]\nExecStart=/bin/x\nRestart="+in+"\n", nil); s.Restart != want {
			t.Errorf("Restart=%s gave %q", in, s.Restart)
		}
	}
}

func TestFromUnitErrors(t *testing.T) {
	for _, text := range []string{
		"[Service]\nUser=x\n",                                    // no ExecStart
		"[Service]\nExecStart=/bin/x\nRestart=sometimes\n",       // bad policy
		"[Service]\nExecStart=/bin/x\nUMask=99\n",                // bad mask
		"[Service]\nExecStart=/bin/x\nRuntimeDirectory=../etc\n", // escapes /run
		"[Service]\nExecStart=/bin/x\nRuntimeDirectory=/etc\n",
		"[Service]\nExecStart=/bin/x\nKillSignal=SIGNOPE\n",
		"[Service]\nExecStart=/bin/x \"unterminated\n",
		"[Service]\nExecStart=/bin/x %z\n",
		"[Service]\nExecStart=/bin/x\nEnvironment=novalue\n",
		"[Service]\nExecStart=/bin/x\nRestartSec=soon\n",
		"[Service]\nExecStart=/bin/x\nWorkingDirectory=relative\n",
	} {
		u := &Unit{Name: "bad.service"}
		if err := u.ParseUnit("bad.service", []byte(text)); err != nil {
			continue
		}
		if _, err := FromUnit(u, nil, nil); err == nil {
			t.Errorf("accepted %q", text)
		}
	}
}

func TestParseTimeSpan(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "100ms": 100 * time.Millisecond,
		"1min 30s": 90 * time.Second, "2h": 2 * time.Hour, "1.5s": 1500 * time.Millisecond} {
		if got, err := ParseTimeSpan(in); err != nil || got != want {
			t.Errorf("ParseTimeSpan(%q) = %v, %v", in, got, err)
		}
	}
}

func FuzzParseUnit(f *testing.F) {
	f.Add([]byte("[Service]\nExecStart=/bin/x 'a b' \"c\\x41\" %i\nUser=u\nRuntimeDirectory=a\n"))
	f.Add([]byte("[Service]\nExecStart=-@/bin/x y \\\n z\nEnvironment=\"A=1 2\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u := &Unit{Name: "f@i.service"}
		if u.ParseUnit("f", b) != nil {
			return
		}
		s, err := FromUnit(u, nil, nil)
		if err != nil {
			return
		}
		for _, d := range s.Directories {
			if d.Path == "/" || d.Path[0] != '/' {
				t.Fatalf("directory %q", d.Path)
			}
		}
	})
}

func TestFromUnitsSelection(t *testing.T) {
	m := unitFS(map[string]string{
		"/lib/systemd/system/nginx.service":      "[Service]\nType=forking\nExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'\n",
		"/lib/systemd/system/ssh.service":        "[Service]\nExecStart=/usr/sbin/sshd -D $SSHD_OPTS\nRuntimeDirectory=sshd\n",
		"/lib/systemd/system/cron.service":       "[Service]\nExecStart=/usr/sbin/cron -f\n",
		"/lib/systemd/system/postgresql.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
		"/lib/systemd/system/app.service":        "[Service]\nExecStart=/usr/bin/python3 /opt/app.py\nUser=app\n",
	}, map[string]string{
		"/etc/systemd/system/multi-user.target.wants/nginx.service":      "/lib/systemd/system/nginx.service",
		"/etc/systemd/system/multi-user.target.wants/ssh.service":        "/lib/systemd/system/ssh.service",
		"/etc/systemd/system/multi-user.target.wants/cron.service":       "/lib/systemd/system/cron.service",
		"/etc/systemd/system/multi-user.target.wants/postgresql.service": "/lib/systemd/system/postgresql.service",
		"/etc/systemd/system/multi-user.target.wants/app.service":        "/lib/systemd/system/app.service",
	})
	names := func(cfg Config) (run, skipped []string) {
		for _, s := range cfg.Services {
			run = append(run, s.Name+"/"+s.Source)
		}
		for _, s := range cfg.Skipped {
			skipped = append(skipped, s.Name)
		}
		return
	}
	var cfg Config
	FromUnits(&cfg, m, UnitOptions{NoProcesses: true})
	run, skipped := names(cfg)
	if !reflect.DeepEqual(run, []string{"app/unit", "nginx/unit"}) || !reflect.DeepEqual(skipped, []string{"cron", "ssh"}) {
		t.Errorf("default: run %q skipped %q", run, skipped)
	}
	cfg = Config{}
	FromUnits(&cfg, m, UnitOptions{NoProcesses: true, Include: []string{"sshd"}, Skip: []string{"app"}, CronInUse: true})
	run, skipped = names(cfg)
	if !reflect.DeepEqual(run, []string{"cron/unit", "nginx/unit", "ssh/unit"}) || !reflect.DeepEqual(skipped, []string{"app"}) {
		t.Errorf("with flags: run %q skipped %q", run, skipped)
	}
	// A process in a unit is described by the unit; one without stays a process.
	cfg = Config{Services: []Service{{Name: "app.py", Argv: []string{"python3", "/opt/app.py"}, Unit: "app.service", UID: 1000, User: "app", GID: 1000},
		{Name: "adhoc", Argv: []string{"/usr/local/bin/adhoc"}}}}
	FromUnits(&cfg, m, UnitOptions{})
	run, _ = names(cfg)
	if !reflect.DeepEqual(run, []string{"adhoc/process", "app.py/unit"}) || cfg.Services[1].UID != 1000 {
		t.Errorf("processes: %q %+v", run, cfg.Services)
	}
}

// TestMemFSLinksStayInside is an attack: a VM's unit links to host files and loops; nothing
// outside the fetched tree is ever read, and loops end with an error.
func TestMemFSLinksStayInside(t *testing.T) {
	m := unitFS(nil, map[string]string{
		"/etc/systemd/system/evil.service":                         "/etc/passwd",
		"/etc/systemd/system/evil2.service":                        "../../../../../../etc/hostname",
		"/etc/systemd/system/loop.service":                         "loop2.service",
		"/etc/systemd/system/loop2.service":                        "loop.service",
		"/etc/systemd/system/multi-user.target.wants/evil.service": "/etc/systemd/system/evil.service",
	})
	for _, n := range []string{"evil.service", "evil2.service", "loop.service"} {
		if u, err := LoadUnit(m, n); err == nil {
			t.Errorf("%s loaded from outside the VM's tree: %v", n, u.Files)
		}
	}
	var cfg Config
	FromUnits(&cfg, m, UnitOptions{NoProcesses: true})
	if len(cfg.Services) != 0 {
		t.Errorf("services from dangling links: %+v", cfg.Services)
	}
}
