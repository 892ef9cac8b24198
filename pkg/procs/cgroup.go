package procs

import (
	"bufio"
	"bytes"
	"strings"
)

// maxCgroupFile bounds what UnitFromCgroup reads of /proc/PID/cgroup.
const maxCgroupFile = 64 << 10

// UnitFromCgroup returns the systemd unit a process belongs to, from the contents of
// /proc/PID/cgroup: the last path element ending in .service, .scope or .socket of the
// unified hierarchy ("0::/system.slice/nginx.service") or, on cgroup v1, of the name=systemd
// hierarchy. Processes of a unit's sub-cgroups ("/system.slice/foo.service/payload") belong
// to that unit. It returns "" when no unit is named (not systemd, a container, the root
// cgroup), or when the content is malformed.
func UnitFromCgroup(b []byte) string {
	if len(b) > maxCgroupFile {
		b = b[:maxCgroupFile]
	}
	var v2, v1 string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), maxCgroupFile)
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		ctrl, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch {
		case id == "0" && ctrl == "":
			v2 = unitOfPath(p)
		case ctrl == "name=systemd":
			v1 = unitOfPath(p)
		}
	}
	if v2 != "" {
		return v2
	}
	return v1
}

// unitOfPath returns the deepest unit named in a cgroup path, ignoring slices.
func unitOfPath(p string) string {
	unit := ""
	for _, el := range strings.Split(p, "/") {
		if validUnitName(el) {
			unit = el
		}
	}
	return unit
}

// validUnitName accepts the unit names systemd accepts in a cgroup path, for the unit types
// that run processes.
func validUnitName(s string) bool {
	if len(s) > 255 {
		return false
	}
	base := ""
	for _, suf := range []string{".service", ".scope", ".socket", ".mount", ".swap"} {
		if b, ok := strings.CutSuffix(s, suf); ok {
			base = b
			break
		}
	}
	if base == "" {
		return false
	}
	for _, r := range base {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":-_.\\@", r)) {
			return false
		}
	}
	return true
}
