package fit

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
)

func writeTree(t *testing.T, files map[string]string) string {
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestAnalyzeRunningVM: a running VM's process bound to one interface address is a decision; a
// cron job is a note when cron comes along as a service; a VM with neither is ready.
func TestAnalyzeRunningVM(t *testing.T) {
	root := writeTree(t, map[string]string{"etc/crontab": "SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
		"var/spool/cron/crontabs/app": "*/5 * * * * /opt/app/sync\n"})
	src, err := source.OpenDir(root, "test")
	if err != nil {
		t.Fatal(err)
	}
	in := Input{
		Services: services.Config{Services: []services.Service{{Name: "cron", Unit: "cron.service", Source: "unit"},
			{Name: "web", UID: 33, User: "www-data", Ports: []services.Port{{Proto: "tcp", Port: 80, Addr: "10.0.0.5"}}}}},
		Processes: []procs.Process{{PID: 42, Argv: []string{"/usr/sbin/web"},
			Listening: []procs.Socket{{Proto: "tcp", Addr: "10.0.0.5", Port: 80}, {Proto: "tcp", Addr: "0.0.0.0", Port: 81}}}},
	}
	rep, err := Analyze(context.Background(), src, in)
	if err != nil {
		t.Fatal(err)
	}
	var bound, cron int
	for _, f := range rep.Findings {
		switch {
		case f.Kind == KindBound && f.Subject == "web on 10.0.0.5" && f.Severity == Decision && f.Where == "process 42":
			bound++
		case f.Kind == KindCron && f.Subject == "*/5 * * * * /opt/app/sync" && f.Severity == Note:
			cron++
		case f.Kind == KindBound || f.Kind == KindCron:
			t.Errorf("unexpected finding %+v", f)
		}
	}
	if bound != 1 || cron != 1 || rep.Verdict != NeedsWork {
		t.Errorf("bound %d cron %d verdict %s; findings %+v", bound, cron, rep.Verdict, rep.Findings)
	}
	if len(rep.Services) != 2 || rep.Services[1].Ports[0] != "tcp 10.0.0.5:80" || rep.Users[0] != "root" || rep.Users[1] != "www-data" {
		t.Errorf("comes along: %+v users %v", rep.Services, rep.Users)
	}
	empty, _ := source.OpenDir(writeTree(t, map[string]string{"etc/hostname": "vm\n"}), "empty")
	if rep, err := Analyze(context.Background(), empty, Input{}); err != nil || rep.Verdict != Ready {
		t.Errorf("empty VM: %v, verdict %+v", err, rep)
	}
}

// TestModulesOnce: a module named in /etc/modules and again through Debian's
// modules-load.d/modules.conf symlink is one finding.
func TestModulesOnce(t *testing.T) {
	root := writeTree(t, map[string]string{"etc/modules": "# boot\nloop\n"})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/modules-load.d"), 0o755))
	must(os.Symlink("../modules", filepath.Join(root, "etc/modules-load.d/modules.conf")))
	src, err := source.OpenDir(root, "test")
	must(err)
	rep, err := Analyze(context.Background(), src, Input{})
	must(err)
	n := 0
	for _, f := range rep.Findings {
		if f.Kind == KindModule {
			n++
			if f.Subject != "loop" || f.Where != "/etc/modules:2" {
				t.Errorf("finding %+v", f)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d module findings, want 1: %+v", n, rep.Findings)
	}
}

// TestUnitDevices: a started unit reading a serial port is a raw-device decision; /dev/null is
// nothing.
func TestUnitDevices(t *testing.T) {
	root := writeTree(t, map[string]string{
		"etc/systemd/system/gps.service": "[Service]\nDeviceAllow=\nExecStart=/usr/sbin/gpsd -N --device=/dev/ttyUSB0 -F /dev/null\n[Install]\nWantedBy=multi-user.target\n",
	})
	if err := os.MkdirAll(filepath.Join(root, "etc/systemd/system/multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/gps.service", filepath.Join(root, "etc/systemd/system/multi-user.target.wants/gps.service")); err != nil {
		t.Fatal(err)
	}
	src, _ := source.OpenDir(root, "test")
	rep, err := Analyze(context.Background(), src, Input{})
	if err != nil {
		t.Fatal(err)
	}
	var devs []string
	for _, f := range rep.Findings {
		if f.Kind == KindRawDevice {
			devs = append(devs, f.Subject)
		}
	}
	if len(devs) != 1 || devs[0] != "/dev/ttyUSB0" {
		t.Errorf("raw devices %v, want /dev/ttyUSB0", devs)
	}
}
