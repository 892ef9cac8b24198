package fit

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/pkg/services"
)

// analysis holds the VM's configuration as read, for the checks.
type analysis struct {
	vm *services.MemFS
	in Input
}

func where(p string, n int) string { return fmt.Sprintf("%s:%d", p, n) }

var networkFS = map[string]bool{"nfs": true, "nfs4": true, "cifs": true, "smbfs": true, "smb3": true,
	"sshfs": true, "fuse.sshfs": true, "glusterfs": true, "ceph": true, "fuse.ceph": true, "9p": true, "davfs": true}

var virtualFS = map[string]bool{"proc": true, "sysfs": true, "tmpfs": true, "devpts": true, "swap": true,
	"devtmpfs": true, "cgroup": true, "cgroup2": true, "securityfs": true, "debugfs": true, "none": true, "efivarfs": true}

// FstabEntry is one line of /etc/fstab.
type FstabEntry struct {
	Spec, File, Type, Options string
	Line                      int
}

// ParseFstab reads fstab lines; malformed lines (fewer than three fields) are skipped.
func ParseFstab(b []byte) []FstabEntry {
	var out []FstabEntry
	for _, l := range lines(b, "#") {
		f := strings.Fields(l.text)
		if len(f) < 3 {
			continue
		}
		e := FstabEntry{Spec: f[0], File: f[1], Type: f[2], Line: l.n}
		if len(f) > 3 {
			e.Options = f[3]
		}
		out = append(out, e)
	}
	return out
}

func (a *analysis) mounts() []Finding {
	b, err := a.vm.ReadFile("/etc/fstab")
	if err != nil {
		return nil
	}
	var out []Finding
	for _, e := range ParseFstab(b) {
		w := where("/etc/fstab", e.Line)
		switch {
		case networkFS[e.Type]:
			out = append(out, Finding{Kind: KindMount, Severity: Decision, Subject: e.File, Where: w,
				Reason:     fmt.Sprintf("%s mounts %s over the network (%s): the converter copies no network filesystem, and the container mounts none at boot", e.File, e.Spec, e.Type),
				Suggestion: fmt.Sprintf("mount it as a volume: docker volume create --driver local --opt type=%s --opt o=addr=SERVER,... --opt device=%s NAME, and mount NAME at %s", strings.TrimPrefix(e.Type, "fuse."), e.Spec, e.File)})
		case virtualFS[e.Type] || e.File == "/" || e.File == "/boot" || e.File == "/boot/efi" || e.Type == "swap":
		default:
			out = append(out, Finding{Kind: KindMount, Severity: Decision, Subject: e.File, Where: w,
				Reason:     fmt.Sprintf("%s is a disk of its own (%s, %s): its contents are data the image should not freeze", e.File, e.Spec, e.Type),
				Suggestion: fmt.Sprintf("convert with --volume %s (its contents become a volume) or bind-mount the disk at %s", e.File, e.File)})
			if strings.HasPrefix(e.Spec, "/dev/") {
				out = append(out, Finding{Kind: KindRawDevice, Severity: Decision, Subject: e.Spec, Where: w,
					Reason:     "fstab names a block device: the container sees the engine's devices, not the VM's",
					Suggestion: fmt.Sprintf("attach the data as a volume; --device %s only if a service needs the raw device", e.Spec)})
			}
		}
	}
	return out
}

func (a *analysis) modules() []Finding {
	var out []Finding
	seen := map[string]bool{} // Debian's modules-load.d/modules.conf links to /etc/modules
	add := func(mod, w, why string) {
		if seen[mod] {
			return
		}
		seen[mod] = true
		out = append(out, Finding{Kind: KindModule, Severity: Decision, Subject: mod, Where: w,
			Reason:     why + ": a container shares the host's kernel and cannot load modules",
			Suggestion: fmt.Sprintf("load it on the host (modprobe %s; /etc/modules-load.d/%s.conf there)", mod, mod)})
	}
	srcs := append([]string{"/etc/modules"}, files(a.vm, "/etc/modules-load.d", ".conf")...)
	for _, p := range srcs {
		b, _ := a.vm.ReadFile(p)
		for _, l := range lines(b, "#") {
			if strings.HasPrefix(l.text, ";") {
				continue
			}
			add(strings.Fields(l.text)[0], where(p, l.n), "the VM loads "+strings.Fields(l.text)[0]+" at boot")
		}
	}
	for _, u := range a.enabledUnits() {
		for _, c := range execLines(u) {
			f := strings.Fields(strings.TrimLeft(c.cmd, "-+!@:"))
			if len(f) > 1 && (path.Base(f[0]) == "modprobe" || path.Base(f[0]) == "insmod") {
				add(lastArg(f[1:]), u.name+" "+c.key, u.name+" runs "+path.Base(f[0]))
			}
		}
	}
	return out
}

func lastArg(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return strings.Join(args, " ")
}

func (a *analysis) sysctls() []Finding {
	seen := map[string]bool{}
	var out []Finding
	srcs := append([]string{"/etc/sysctl.conf"}, files(a.vm, "/etc/sysctl.d", ".conf")...)
	for _, p := range srcs {
		if _, link := a.vm.Readlink(p); link {
			continue // 99-sysctl.conf -> ../sysctl.conf
		}
		b, _ := a.vm.ReadFile(p)
		for _, l := range lines(b, "#") {
			k, v, ok := strings.Cut(l.text, "=")
			k, v = strings.TrimSpace(strings.TrimPrefix(k, "-")), strings.TrimSpace(v)
			if !ok || strings.HasPrefix(k, ";") || seen[k] {
				continue
			}
			seen[k] = true
			f := Finding{Kind: KindSysctl, Subject: k + "=" + v, Where: where(p, l.n)}
			if strings.HasPrefix(k, "net.") {
				f.Severity, f.Reason = Note, "a network sysctl of the VM: the container's network namespace starts with the engine's defaults"
				f.Suggestion = fmt.Sprintf("docker run --sysctl %s=%s (compose: sysctls:)", k, v)
			} else {
				f.Severity, f.Reason = Decision, "a kernel-wide sysctl: a container cannot set it, the host's value applies"
				f.Suggestion = fmt.Sprintf("set %s=%s on the host if the services rely on it", k, v)
			}
			out = append(out, f)
		}
	}
	return out
}

// housekeeping are the distribution's own timers and cron files: nothing a container misses.
var housekeeping = map[string]bool{"apt-daily.timer": true, "apt-daily-upgrade.timer": true, "man-db.timer": true,
	"dpkg-db-backup.timer": true, "e2scrub_all.timer": true, "fstrim.timer": true, "systemd-tmpfiles-clean.timer": true,
	"e2scrub_all": true, ".placeholder": true, "logrotate.timer": true}

func (a *analysis) timers() []Finding {
	var out []Finding
	for _, name := range a.enabledNames() {
		if !strings.HasSuffix(name, ".timer") || housekeeping[name] {
			continue
		}
		u, err := services.LoadUnit(a.vm, name)
		if err != nil {
			continue
		}
		when := strings.Join(slices.Concat(u.Values("Timer", "OnCalendar"), u.Values("Timer", "OnBootSec"), u.Values("Timer", "OnUnitActiveSec")), ", ")
		target := cmpOr(u.Value("Timer", "Unit"), strings.TrimSuffix(name, ".timer")+".service")
		cmd := ""
		if su, err := services.LoadUnit(a.vm, target); err == nil {
			cmd = su.Value("Service", "ExecStart")
		}
		out = append(out, Finding{Kind: KindTimer, Severity: Decision, Subject: name, Where: "enabled " + name,
			Reason:     fmt.Sprintf("%s runs %s (%s) on a schedule (%s): the image's init starts services, it fires no timers", name, target, cmd, cmpOr(when, "see the unit")),
			Suggestion: "run the job from the host's scheduler or a Kubernetes CronJob (docker exec CONTAINER " + strings.TrimLeft(cmd, "-+!@:") + "), or as a cron line in the container with --service cron"})
	}
	return out
}

func (a *analysis) cron() []Finding {
	cronRuns := false
	for _, s := range a.in.Services.Services {
		if s.Name == "cron" || s.Name == "crond" || strings.HasPrefix(s.Unit, "cron") {
			cronRuns = true
		}
	}
	var out []Finding
	add := func(p string, l numbered, user string) {
		f := Finding{Kind: KindCron, Subject: l.text, Where: where(p, l.n)}
		if cronRuns {
			f.Severity, f.Reason, f.Suggestion = Note, "a cron job ("+user+"): cron comes along as a service and runs it", "keep it, or move it to the host's scheduler"
		} else {
			f.Severity, f.Reason = Decision, "a cron job ("+user+") but no cron daemon will run in the container"
			f.Suggestion = "convert with --service cron, or run it from the host's scheduler"
		}
		out = append(out, f)
	}
	crontab, _ := a.vm.ReadFile("/etc/crontab")
	for _, l := range lines(crontab, "#") {
		if cronLine(l.text) && !strings.Contains(l.text, "run-parts") {
			add("/etc/crontab", l, cronUser(l.text))
		}
	}
	for _, p := range files(a.vm, "/etc/cron.d", "") {
		if housekeeping[path.Base(p)] {
			continue
		}
		b, _ := a.vm.ReadFile(p)
		for _, l := range lines(b, "#") {
			if cronLine(l.text) {
				add(p, l, cronUser(l.text))
			}
		}
	}
	for _, p := range files(a.vm, "/var/spool/cron/crontabs", "") {
		b, _ := a.vm.ReadFile(p)
		for _, l := range lines(b, "#") {
			if cronLine(l.text) {
				add(p, l, path.Base(p))
			}
		}
	}
	return out
}

// cronLine: a schedule line (five fields or @reboot-style), not an assignment.
func cronLine(s string) bool {
	f := strings.Fields(s)
	if len(f) == 0 || strings.Contains(f[0], "=") {
		return false
	}
	if strings.HasPrefix(f[0], "@") {
		return len(f) >= 2
	}
	return len(f) >= 6 && strings.IndexFunc(f[0], func(r rune) bool { return !strings.ContainsRune("0123456789*/,-", r) }) < 0
}

// cronUser is the user field of a system crontab line ("" when absent).
func cronUser(s string) string {
	f := strings.Fields(s)
	i := 5
	if strings.HasPrefix(f[0], "@") {
		i = 1
	}
	if len(f) <= i {
		return "?"
	}
	return f[i]
}
