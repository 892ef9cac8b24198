package pkgmgr

import (
	"path"
	"sort"
	"strconv"
	"strings"
)

// RepoConfigPaths returns the paths, absolute in the VM, of the repository configuration and
// signing keys a build root needs to install the VM's packages from the VM's own repositories,
// and the package manager's own options that change what an install writes.
// A path ending in "/" is a directory to carry whole. For rpm the list covers dnf, yum and
// zypper; paths a VM lacks are simply absent. What is read from them is configuration of the VM,
// data only: FilterConfig keeps the allowlisted keys before anything reaches a build root.
func RepoConfigPaths(m Manager) []string {
	switch m {
	case Dpkg:
		return []string{
			"/etc/apt/sources.list", "/etc/apt/sources.list.d/",
			"/etc/apt/trusted.gpg", "/etc/apt/trusted.gpg.d/", "/etc/apt/keyrings/",
			"/etc/apt/preferences", "/etc/apt/preferences.d/",
			"/etc/apt/apt.conf", "/etc/apt/apt.conf.d/",
			"/usr/share/keyrings/",
			// dpkg's own options, path-exclude among them: a VM that keeps no docs or
			// locales gets none reinstalled only to be whited out again by its diff.
			"/etc/dpkg/dpkg.cfg", "/etc/dpkg/dpkg.cfg.d/",
		}
	case RPM:
		return []string{
			"/etc/yum.repos.d/", "/etc/pki/rpm-gpg/",
			"/etc/dnf/dnf.conf", "/etc/dnf/vars/", "/etc/yum.conf", "/etc/yum/vars/",
			"/etc/zypp/repos.d/", "/etc/zypp/zypp.conf",
		}
	case APK:
		return []string{"/etc/apk/repositories", "/etc/apk/keys/"}
	case Pacman:
		return []string{"/etc/pacman.conf", "/etc/pacman.d/"}
	}
	return nil
}

// RecommendsDefault says whether the VM's installer follows Recommends when its command line
// does not say, from the VM's configuration files in conf (absolute path in the VM -> content):
//   - dpkg: apt's APT::Install-Recommends, read as apt does from /etc/apt/apt.conf.d/* (the
//     names apt accepts, in its order) and then /etc/apt/apt.conf: true when no file sets it,
//     false when the last setting is false, empty, unknown ("maybe") or cleared (#clear);
//   - rpm: install_weak_deps in /etc/dnf/dnf.conf (default true) on a dnf system,
//     solver.onlyRequires in /etc/zypp/zypp.conf (default false) on a zypper one; a system
//     with only /etc/yum.conf is a yum one, which never follows weak dependencies;
//   - apk and pacman have no such dependencies: false.
func RecommendsDefault(m Manager, conf map[string]string) bool {
	switch m {
	case Dpkg:
		return recommendsDefault(feApt, conf)
	case RPM:
		conf = cleanConfPaths(conf)
		switch {
		case hasKey(conf, "/etc/dnf/dnf.conf"):
			return recommendsDefault(feDnf, conf)
		case hasKey(conf, "/etc/zypp/zypp.conf"):
			return recommendsDefault(feZypper, conf)
		case hasKey(conf, "/etc/yum.conf"):
			return false
		}
		return true
	}
	return false
}

// recommendsDefault is RecommendsDefault for a known installer.
func recommendsDefault(fe string, conf map[string]string) bool {
	conf = cleanConfPaths(conf)
	switch fe {
	case feApt:
		// apt presets the key to true before reading the files, and reads it with a default of
		// false: a cleared, empty or unreadable value means false.
		v, _ := aptConfigValue(conf, "apt::install-recommends", "true")
		b, _ := aptBool(v)
		return b
	case feDnf, feMicrodnf:
		if b, ok := iniBool(conf["/etc/dnf/dnf.conf"], "main", "install_weak_deps"); ok {
			return b
		}
		return true
	case feZypper:
		if b, ok := iniBool(conf["/etc/zypp/zypp.conf"], "main", "solver.onlyRequires"); ok {
			return !b
		}
		return true
	}
	return false
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// cleanConfPaths makes every key an absolute, clean path.
func cleanConfPaths(conf map[string]string) map[string]string {
	out := make(map[string]string, len(conf))
	for k, v := range conf {
		out[path.Clean("/"+k)] = v
	}
	return out
}

// aptConfigValue reads apt's configuration files from conf as apt does (the parts directory in
// name order, then the main file; the last assignment wins) over a preset value of key, and
// returns key's value; key is lower case.
func aptConfigValue(conf map[string]string, key, preset string) (string, bool) {
	var parts []string
	for p := range conf {
		if dir, name := path.Split(p); dir == "/etc/apt/apt.conf.d/" && aptPartName(name) {
			parts = append(parts, p)
		}
	}
	sort.Strings(parts)
	if hasKey(conf, "/etc/apt/apt.conf") {
		parts = append(parts, "/etc/apt/apt.conf")
	}
	cfg := aptConfig{key: preset}
	for _, p := range parts {
		cfg.parse(conf[p])
	}
	v, ok := cfg[key]
	return v, ok
}

// aptPartName applies apt's rule for files in apt.conf.d: letters, digits, '_', '-', ':' and
// '.', not ending in '.', and either no extension or ".conf".
func aptPartName(name string) bool {
	if name == "" || strings.HasSuffix(name, ".") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnumByte(c) && !strings.ContainsRune("_-:.", rune(c)) {
			return false
		}
	}
	return !strings.Contains(name, ".") || strings.HasSuffix(name, ".conf")
}

// aptBool reads a boolean as apt's StringToBool does; valid is false for an empty or unknown
// value, for which apt takes the default it reads with (false for APT::Install-Recommends).
func aptBool(v string) (b, valid bool) {
	if v == "" {
		return false, false
	}
	if n, err := strconv.ParseInt(v, 0, 64); err == nil && (n == 0 || n == 1) {
		return n == 1, true
	}
	switch strings.ToLower(v) {
	case "no", "false", "without", "off", "disable":
		return false, true
	case "yes", "true", "with", "on", "enable":
		return true, true
	}
	return false, false
}

// aptConfig is apt's configuration tree, flattened: lower-case "a::b::c" keys to values.
type aptConfig map[string]string

// aptToken is one token of an apt configuration file.
type aptToken struct {
	text   string
	quoted bool
	punct  byte // '{', '}' or ';'; 0 for a word or string
}

// parse reads one configuration file into c, tolerantly: what apt would reject as a syntax
// error is skipped (apt then refuses to run at all, so no answer is wrong). Scopes ("APT {
// Install-Recommends "0"; };") nest; "#clear KEY;" removes a key and everything under it;
// "#include" is ignored; list items (a value without a tag) set nothing.
func (c aptConfig) parse(text string) {
	for _, st := range aptStatements(text) {
		switch {
		case st.directive || st.list:
		case st.clear:
			c.clear(strings.ToLower(st.key))
		default:
			c[strings.ToLower(st.key)] = st.value
		}
	}
}

func (c aptConfig) clear(key string) {
	for k := range c {
		if k == key || strings.HasPrefix(k, key+"::") {
			delete(c, k)
		}
	}
}

// aptTokens splits a file into words, quoted strings and the punctuation "{", "}", ";",
// dropping comments: "//" and "#" to the end of the line (but "#clear" and "#include" are
// words), and "/* ... */".
func aptTokens(s string) []aptToken {
	var toks []aptToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"':
			end := strings.IndexByte(s[i+1:], '"')
			if end < 0 {
				return toks // unterminated: apt rejects the file
			}
			toks = append(toks, aptToken{text: s[i+1 : i+1+end], quoted: true})
			i += end + 2
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return toks
			}
			i += end + 4
		case strings.HasPrefix(s[i:], "//") || (c == '#' && !aptDirective(s[i:])):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return toks
			}
			i += end
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, aptToken{punct: c})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\"{};", rune(s[j])) && !strings.HasPrefix(s[j:], "//") && !strings.HasPrefix(s[j:], "/*") {
				j++
			}
			toks = append(toks, aptToken{text: s[i:j]})
			i = j
		}
	}
	return toks
}

// aptDirective reports whether s starts with a "#clear" or "#include" directive.
func aptDirective(s string) bool {
	for _, d := range []string{"#clear", "#include"} {
		if len(s) > len(d) && strings.EqualFold(s[:len(d)], d) && (s[len(d)] == ' ' || s[len(d)] == '\t') {
			return true
		}
	}
	return false
}

// iniBool reads a boolean key of an INI section (dnf.conf, zypp.conf), the last one winning,
// with the spellings libdnf and libzypp accept.
func iniBool(text, section, key string) (b, ok bool) {
	in := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			in = strings.EqualFold(strings.Trim(line, "[] \t"), section)
			continue
		}
		k, v, found := strings.Cut(line, "=")
		if !in || !found || !strings.EqualFold(strings.TrimSpace(k), key) {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "yes", "true", "on", "always", "+":
			b, ok = true, true
		case "0", "no", "false", "off", "never", "-":
			b, ok = false, true
		}
	}
	return b, ok
}
