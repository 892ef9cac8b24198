package fit

import (
	"encoding/binary"
	"path"
	"slices"
	"testing"

	"github.com/vm2image/vm2image/pkg/services"
)

func TestParseFstab(t *testing.T) {
	got := ParseFstab([]byte("# c\nUUID=1 / ext4 defaults 0 1\n\nnas:/x /srv/x nfs4 rw,_netdev 0 0\nbad line\n"))
	want := []FstabEntry{{"UUID=1", "/", "ext4", "defaults", 2}, {"nas:/x", "/srv/x", "nfs4", "rw,_netdev", 4}}
	if !slices.Equal(got, want) {
		t.Errorf("ParseFstab = %+v, want %+v", got, want)
	}
}

func capXattr(rev uint32, lo, hi uint32) []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b, rev)
	binary.LittleEndian.PutUint32(b[4:], lo)
	binary.LittleEndian.PutUint32(b[12:], hi)
	return b
}

func TestParseCapability(t *testing.T) {
	got, err := ParseCapability(capXattr(0x02000001, 1<<13|1<<10, 1<<(39-32)))
	if err != nil || !slices.Equal(got, []string{"NET_BIND_SERVICE", "NET_RAW", "BPF"}) {
		t.Errorf("ParseCapability = %v, %v", got, err)
	}
	f := capFinding("/x", capXattr(0x02000001, 1<<12, 0))
	if f.Severity != Decision || f.Suggestion != "run the container with --cap-add NET_ADMIN if a service uses it" {
		t.Errorf("NET_ADMIN finding %+v", f)
	}
	for _, bad := range [][]byte{nil, make([]byte, 12), capXattr(0x09000000, 0, 0)[:20], capXattr(0x02000000, 0, 0)[:12]} {
		if _, err := ParseCapability(bad); err == nil {
			t.Errorf("ParseCapability(%x) accepted", bad)
		}
	}
}

func TestSpecific(t *testing.T) {
	for s, want := range map[string]bool{"10.0.0.5": true, "10.0.0.5:80": true, "[2001:db8::1]:80": true, "'192.168.1.2'": true,
		"0.0.0.0": false, "127.0.0.1": false, "::": false, "*": false, "localhost": false, "ff02::1": false, "80": false} {
		if _, got := specific(s); got != want {
			t.Errorf("specific(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestCronLine(t *testing.T) {
	for s, want := range map[string]bool{"15 3 * * * root cmd": true, "@reboot root cmd": true, "SHELL=/bin/sh": false,
		"*/5 * * * * root x": true, "MAILTO=a": false, "abc def": false} {
		if got := cronLine(s); got != want {
			t.Errorf("cronLine(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzParseFstab(f *testing.F) {
	f.Add([]byte("nas:/x /srv/x nfs4 rw 0 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range ParseFstab(b) {
			if e.Spec == "" || e.File == "" || e.Type == "" {
				t.Fatalf("empty field in %+v", e)
			}
		}
	})
}

func FuzzParseCapability(f *testing.F) {
	f.Add(capXattr(0x02000001, 1<<13, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := ParseCapability(b)
		if err == nil && len(names) > 64 {
			t.Fatalf("%d names", len(names))
		}
	})
}

func FuzzCronAndHosts(f *testing.F) {
	f.Add("@reboot")
	f.Add("15 3 * * * root cmd")
	f.Fuzz(func(t *testing.T, s string) {
		if cronLine(s) {
			cronUser(s)
		}
		specific(s)
		containsWord(s, "host")
	})
}

// FuzzChecks feeds one hostile text as every configuration file fit reads (and as a unit),
// and runs every check: none may panic.
func FuzzChecks(f *testing.F) {
	f.Add("nas:/x /srv nfs4 rw 0 0\n")
	f.Add("[Service]\nExecStart=/sbin/modprobe x --listen=10.0.0.1:80 /dev/ttyS0\nDeviceAllow=\nType=dbus\n[Timer]\nOnCalendar=daily\n")
	f.Add("@reboot\n* * * * *\nlisten_addresses = '10.0.0.1'\nlisten 10.0.0.1:80;\n10.0.0.9 host\n")
	f.Fuzz(func(t *testing.T, s string) {
		m := services.NewMemFS()
		for _, p := range []string{"/etc/fstab", "/etc/modules", "/etc/sysctl.conf", "/etc/crontab", "/etc/cron.d/x",
			"/var/spool/cron/crontabs/u", "/etc/hosts", "/etc/hostname", "/etc/nginx/sites-enabled/x", "/etc/postgresql/15/main/postgresql.conf",
			"/etc/systemd/system/x.service", "/etc/systemd/system/x.timer", "/etc/systemd/system/x.socket"} {
			m.AddFile(p, []byte(s))
		}
		for _, l := range []string{"multi-user.target.wants/x.service", "timers.target.wants/x.timer", "sockets.target.wants/x.socket"} {
			m.AddSymlink("/etc/systemd/system/"+l, "/etc/systemd/system/"+path.Base(l))
		}
		a := &analysis{vm: m, in: Input{Hostname: "host"}}
		for _, check := range []func() []Finding{a.mounts, a.modules, a.sysctls, a.timers, a.cron, a.bound, a.devices, a.needsSystemd, a.hostname} {
			check()
		}
	})
}
