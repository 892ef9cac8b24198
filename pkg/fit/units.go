package fit

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/vm2image/vm2image/pkg/services"
)

type loadedUnit struct {
	name string
	*services.Unit
}

// enabledNames are the units the VM starts at boot (and the timers it arms).
func (a *analysis) enabledNames() []string {
	names := services.EnabledUnits(a.vm)
	for _, d := range services.UnitPaths {
		for _, n := range a.vm.ReadDir(path.Join(d, "timers.target.wants")) {
			names = append(names, n)
		}
		for _, n := range a.vm.ReadDir(path.Join(d, "sockets.target.wants")) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func (a *analysis) enabledUnits() []loadedUnit {
	var out []loadedUnit
	for _, n := range a.enabledNames() {
		if u, err := services.LoadUnit(a.vm, n); err == nil {
			out = append(out, loadedUnit{n, u})
		}
	}
	return out
}

type execLine struct{ key, cmd string }

func execLines(u loadedUnit) []execLine {
	var out []execLine
	for _, k := range []string{"ExecStartPre", "ExecStart", "ExecStartPost"} {
		for _, v := range u.Values("Service", k) {
			out = append(out, execLine{k, v})
		}
	}
	return out
}

// specific reports whether s (an address, host:port, [v6]:port or addr/len) names one
// interface address: not the wildcard, not loopback.
func specific(s string) (netip.Addr, bool) {
	s = strings.Trim(s, `"';,`)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		s = ap.Addr().String()
	} else if h, _, ok := strings.Cut(s, ":"); ok && strings.Count(s, ":") == 1 {
		s = h
	}
	ad, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || ad.IsUnspecified() || ad.IsLoopback() || ad.IsMulticast() || ad.IsLinkLocalUnicast() {
		return netip.Addr{}, false
	}
	return ad, true
}

// bindConfig are the configuration lines that bind a service to addresses.
var bindConfig = []struct {
	dir, suffix string
	re          *regexp.Regexp
	service     string
}{
	{"/etc/postgresql", "postgresql.conf", regexp.MustCompile(`^listen_addresses\s*=\s*'([^']*)'`), "postgresql"},
	{"/etc/nginx", "", regexp.MustCompile(`^listen\s+([^\s;]+)`), "nginx"},
	{"/etc/redis", ".conf", regexp.MustCompile(`^bind\s+(.+)$`), "redis"},
	{"/etc/mysql", ".cnf", regexp.MustCompile(`^bind-address\s*=\s*(\S+)`), "mysql"},
	{"/etc/ssh", "sshd_config", regexp.MustCompile(`^ListenAddress\s+(\S+)`), "sshd"},
	{"/etc/apache2", ".conf", regexp.MustCompile(`^Listen\s+(\S+)`), "apache2"},
	{"/etc", "mongod.conf", regexp.MustCompile(`^\s*bindIp:\s*(\S+)`), "mongod"},
}

func (a *analysis) bound() []Finding {
	var out []Finding
	seen := map[string]bool{}
	add := func(service, addr, w, how string) {
		if seen[service+addr] {
			return
		}
		seen[service+addr] = true
		out = append(out, Finding{Kind: KindBound, Severity: Decision, Subject: service + " on " + addr, Where: w,
			Reason:     fmt.Sprintf("%s listens on %s only (%s): the container has its own address, so the bind fails or nobody can reach it", service, addr, how),
			Suggestion: fmt.Sprintf("bind it to 0.0.0.0 in %s and publish the port (-p %s:PORT:PORT keeps the host side on that address)", w, addr)})
	}
	for _, p := range a.in.Processes {
		for _, s := range p.Listening {
			if ad, ok := specific(s.Addr); ok {
				add(cmpOr(path.Base(firstOr(p.Argv)), fmt.Sprint(p.PID)), ad.String(), fmt.Sprintf("process %d", p.PID), fmt.Sprintf("%s port %d", s.Proto, s.Port))
			}
		}
	}
	for _, bc := range bindConfig {
		for _, p := range a.walkFiles(bc.dir, bc.suffix) {
			b, _ := a.vm.ReadFile(p)
			for _, l := range lines(b, "#") {
				m := bc.re.FindStringSubmatch(l.text)
				if m == nil {
					continue
				}
				for _, tok := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ',' || r == ' ' }) {
					if ad, ok := specific(tok); ok {
						add(bc.service, ad.String(), where(p, l.n), "its configuration")
					}
				}
			}
		}
	}
	for _, u := range a.enabledUnits() {
		vals := u.Values("Socket", "ListenStream")
		for _, c := range execLines(u) {
			vals = append(vals, strings.Fields(c.cmd)...)
		}
		for _, v := range vals {
			_, tok, _ := strings.Cut(v, "=") // --listen=10.0.0.5:80
			if ad, ok := specific(cmpOr(tok, v)); ok {
				add(strings.TrimSuffix(u.name, path.Ext(u.name)), ad.String(), u.name, "its unit")
			}
		}
	}
	return out
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// walkFiles lists the regular files under dir in the tree whose names end in suffix.
func (a *analysis) walkFiles(dir, suffix string) []string {
	var out []string
	var walk func(d string, depth int)
	walk = func(d string, depth int) {
		if depth > 6 {
			return
		}
		for _, n := range a.vm.ReadDir(d) {
			p := path.Join(d, n)
			if _, link := a.vm.Readlink(p); !link && a.vm.ReadDir(p) != nil {
				walk(p, depth+1)
			} else if strings.HasSuffix(n, suffix) {
				if _, err := a.vm.ReadFile(p); err == nil {
					out = append(out, p)
				}
			}
		}
	}
	walk(dir, 0)
	return out
}

func (a *analysis) needsSystemd() []Finding {
	var out []Finding
	started := map[string]bool{}
	for _, s := range a.in.Services.Services {
		started[s.Unit] = true
	}
	for _, u := range a.enabledUnits() {
		if strings.HasSuffix(u.name, ".service") && !started[u.name] {
			continue // left out of the image: nothing to start
		}
		var why string
		switch {
		case strings.HasSuffix(u.name, ".socket") && !strings.HasPrefix(u.name, "systemd-") && !strings.HasPrefix(u.name, "dbus"):
			why = "socket activation: systemd holds the socket and starts the service on the first connection"
		case u.Value("Service", "Type") == "dbus" || u.Value("Service", "BusName") != "":
			why = "it takes a name on the D-Bus system bus, which the container does not run"
		default:
			for _, c := range execLines(u) {
				if f := strings.Fields(strings.TrimLeft(c.cmd, "-+!@:")); len(f) > 0 && slices.Contains([]string{"systemctl", "busctl", "loginctl"}, path.Base(f[0])) {
					why = c.key + " calls " + path.Base(f[0]) + ", which needs systemd running"
				}
			}
		}
		if why != "" {
			out = append(out, Finding{Kind: KindNeedsSystemd, Severity: Decision, Subject: u.name, Where: u.name, Reason: why,
				Suggestion: "start the service directly (the image's init does for .service units), or run systemd as the container's init (--cgroupns=host, a writable /sys/fs/cgroup)"})
		}
	}
	return out
}

func (a *analysis) hostname() []Finding {
	host := a.in.Hostname
	if host == "" {
		b, _ := a.vm.ReadFile("/etc/hostname")
		host = strings.TrimSpace(string(b))
	}
	var out []Finding
	b, _ := a.vm.ReadFile("/etc/hosts")
	for _, l := range lines(b, "#") {
		f := strings.Fields(l.text)
		if ad, ok := specific(f[0]); ok && len(f) > 1 {
			out = append(out, Finding{Kind: KindHostname, Severity: Note, Subject: l.text, Where: where("/etc/hosts", l.n),
				Reason:     fmt.Sprintf("the engine writes the container's /etc/hosts: the VM's entry for %s is lost", ad),
				Suggestion: fmt.Sprintf("docker run --add-host %s:%s (compose: extra_hosts)", f[1], ad)})
		}
	}
	if host == "" || host == "localhost" {
		return out
	}
	for _, bc := range bindConfig {
		for _, p := range a.walkFiles(bc.dir, bc.suffix) {
			b, _ := a.vm.ReadFile(p)
			for _, l := range lines(b, "#") {
				if containsWord(l.text, host) {
					out = append(out, Finding{Kind: KindHostname, Severity: Note, Subject: host, Where: where(p, l.n),
						Reason:     "the configuration names the VM's hostname " + host + ": the container's hostname is its ID unless set",
						Suggestion: "docker run --hostname " + host + " (compose: hostname:)"})
				}
			}
		}
	}
	return out
}

func containsWord(s, w string) bool {
	for i := strings.Index(s, w); i >= 0; {
		end := i + len(w)
		before := i == 0 || !isWordByte(s[i-1])
		after := end == len(s) || !isWordByte(s[end])
		if before && after {
			return true
		}
		j := strings.Index(s[i+1:], w)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// harmlessDevices are the device paths every container has.
var harmlessDevices = map[string]bool{"/dev/null": true, "/dev/zero": true, "/dev/random": true, "/dev/urandom": true,
	"/dev/full": true, "/dev/tty": true, "/dev/console": true, "/dev/stdin": true, "/dev/stdout": true, "/dev/stderr": true, "/dev/log": true}

// devices finds device paths in the enabled units' commands and DeviceAllow= settings.
func (a *analysis) devices() []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, u := range a.enabledUnits() {
		vals := u.Values("Service", "DeviceAllow")
		for _, c := range execLines(u) {
			vals = append(vals, strings.Fields(c.cmd)...)
		}
		for _, v := range vals {
			_, tok, _ := strings.Cut(v, "=") // --device=/dev/ttyUSB0
			f := strings.Fields(cmpOr(tok, v))
			if len(f) == 0 {
				continue // DeviceAllow= (a reset)
			}
			dev := f[0]
			if !strings.HasPrefix(dev, "/dev/") || harmlessDevices[dev] || strings.HasPrefix(dev, "/dev/shm") || strings.HasPrefix(dev, "/dev/fd/") || seen[dev] {
				continue
			}
			seen[dev] = true
			out = append(out, Finding{Kind: KindRawDevice, Severity: Decision, Subject: dev, Where: u.name,
				Reason:     u.name + " uses the device " + dev + ": the container's devices are the engine's",
				Suggestion: "docker run --device " + dev + " (compose: devices:) if the host has it"})
		}
	}
	return out
}
