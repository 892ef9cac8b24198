package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/fit"
)

// fitVM edits an overlay of the fixture VM into one with everything fit must name: an NFS mount,
// a cron job, an enabled systemd timer, a service bound to one interface address, a module
// loaded at boot and by a unit, a kernel sysctl, and a PostgreSQL data directory.
func fitVM(t *testing.T) string {
	root := testenv.Overlay(t, testenv.Root(t, testenv.WebVM))
	files := map[string]string{
		"etc/fstab":                         "/dev/vda1 / ext4 defaults 0 1\nnas.example:/export/media /srv/media nfs4 defaults,_netdev 0 0\n",
		"etc/cron.d/backup":                 "SHELL=/bin/sh\n15 3 * * * root /usr/local/bin/backup --all\n",
		"etc/systemd/system/report.timer":   "[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n",
		"etc/systemd/system/report.service": "[Service]\nType=oneshot\nExecStart=/usr/local/bin/report\n",
		"etc/systemd/system/api.service": "[Service]\nExecStartPre=/sbin/modprobe -q br_netfilter\nExecStart=/usr/bin/busybox httpd -f -p 10.20.30.40:8080 -h /srv/app/public\n" +
			"User=app\n[Install]\nWantedBy=multi-user.target\n",
		"etc/modules-load.d/wireguard.conf":      "# VPN\nwireguard\n",
		"etc/sysctl.d/60-vm.conf":                "vm.max_map_count = 262144\nnet.core.somaxconn=4096\n",
		"var/lib/postgresql/15/main/PG_VERSION":  "15\n",
		"var/lib/postgresql/15/main/base/1/1259": strings.Repeat("x", 8192),
	}
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, full, c)
	}
	for link, target := range map[string]string{
		"etc/systemd/system/timers.target.wants/report.timer":    "/etc/systemd/system/report.timer",
		"etc/systemd/system/multi-user.target.wants/api.service": "/etc/systemd/system/api.service",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755)
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestInspectFit: inspect --fit names each of the VM's container-fit problems with its reason,
// in the text and the documented JSON, and gives the verdict needs-work.
func TestInspectFit(t *testing.T) {
	root := fitVM(t)
	var out bytes.Buffer
	if err := runInspect(context.Background(), inspectOptions{fit: true, json: true}, "dir:"+root, &out); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Fit *fit.Report `json:"fit"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Fit == nil {
		t.Fatalf("JSON: %v\n%s", err, out.String())
	}
	want := []struct{ kind, subject, reason string }{
		{fit.KindMount, "/srv/media", "over the network (nfs4)"},
		{fit.KindCron, "15 3 * * * root /usr/local/bin/backup --all", "no cron daemon"},
		{fit.KindTimer, "report.timer", "fires no timers"},
		{fit.KindBound, "api on 10.20.30.40", "listens on 10.20.30.40 only"},
		{fit.KindModule, "wireguard", "cannot load modules"},
		{fit.KindModule, "br_netfilter", "api.service runs modprobe"},
		{fit.KindSysctl, "vm.max_map_count=262144", "kernel-wide"},
		{fit.KindDataDir, "/var/lib/postgresql", "PostgreSQL's databases"},
	}
	for _, w := range want {
		found := false
		for _, f := range rep.Fit.Findings {
			if f.Kind == w.kind && f.Subject == w.subject && strings.Contains(f.Reason, w.reason) && f.Suggestion != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s finding for %q with reason %q", w.kind, w.subject, w.reason)
		}
	}
	if rep.Fit.Verdict != fit.NeedsWork {
		t.Errorf("verdict %q, want %q", rep.Fit.Verdict, fit.NeedsWork)
	}
	if dirs := (&fit.Report{Findings: rep.Fit.Findings}).DataDirs(); len(dirs) != 1 || dirs[0] != "/var/lib/postgresql" {
		t.Errorf("volume candidates %v, want /var/lib/postgresql", dirs)
	}
	out.Reset()
	if err := runInspect(context.Background(), inspectOptions{fit: true}, "dir:"+root, &out); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Fit:       needs-work", "DECISION   mount: /srv/media", "in /etc/fstab:2", "why: ", "do:  ", "NOTE       data-directory: /var/lib/postgresql"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("text report lacks %q:\n%s", s, out.String())
		}
	}
}

// TestInspectFitReadyVM: the fixture VM as built has nothing that needs a decision.
func TestInspectFitReadyVM(t *testing.T) {
	root := testenv.Root(t, testenv.WebVM)
	var out bytes.Buffer
	if err := runInspect(context.Background(), inspectOptions{fit: true, json: true}, "dir:"+root, &out); err != nil {
		t.Fatal(err)
	}
	var rep struct{ Fit *fit.Report }
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Fit.Findings {
		if f.Severity == fit.Decision && f.Kind != fit.KindCapability {
			t.Errorf("unexpected decision on the plain fixture: %+v", f)
		}
	}
}

// TestAttackFitReadsOnlyTheVM: a VM whose fstab is a symlink to a host file (an NFS line the
// attacker wants reported, or a host secret to leak into the report) and whose cron.d holds a
// file far over the bound. The real binary follows the link inside the VM's root only, names
// the oversized file as not read, and prints nothing of the host's file.
func TestAttackFitReadsOnlyTheVM(t *testing.T) {
	root := testenv.Overlay(t, testenv.Root(t, testenv.WebVM))
	host := filepath.Join(t.TempDir(), "host-fstab")
	writeFile(t, host, "hostsecret:/leak /mnt/leak nfs defaults 0 0\n")
	os.Remove(filepath.Join(root, "etc/fstab"))
	if err := os.Symlink(host, filepath.Join(root, "etc/fstab")); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(root, "etc/cron.d/huge")
	writeFile(t, big, "* * * * * root /bin/true\n"+strings.Repeat("#", 3<<20))
	out, err := exec.Command(vm2imageBinary(t), "inspect", "dir:"+root, "--fit", "--json").Output()
	if err != nil {
		t.Fatalf("inspect --fit: %v", err)
	}
	if bytes.Contains(out, []byte("hostsecret")) || bytes.Contains(out, []byte("/mnt/leak")) {
		t.Errorf("the report shows the host's file through the VM's symlink:\n%s", out)
	}
	if !bytes.Contains(out, []byte("/etc/cron.d/huge: ")) || bytes.Contains(out, []byte("root /bin/true")) {
		t.Errorf("the oversized cron file was read or not named as not read:\n%s", out)
	}
}
