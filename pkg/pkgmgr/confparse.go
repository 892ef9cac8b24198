package pkgmgr

import (
	"bytes"
	"path"
	"strings"
)

// aptStmt is one statement of an apt configuration file, its scope applied: a value, a list
// item (list), a "#clear" (clear) or an "#include" (include).
type aptStmt struct {
	key, value             string // key in the file's spelling, scopes joined with "::"
	list, clear, directive bool
}

// aptStatements parses an apt configuration file (apt.conf(5): nested scopes, "#clear",
// "#include", comments) into its statements, in order. What apt would reject is skipped.
func aptStatements(text string) []aptStmt {
	var out []aptStmt
	var scope []string
	var pending []aptToken
	for _, t := range aptTokens(text) {
		switch t.punct {
		case 0:
			pending = append(pending, t)
			continue
		case '{':
			name := ""
			if len(pending) > 0 && !pending[0].quoted {
				name = pending[0].text
			}
			scope = append(scope, name)
		case '}':
			if len(scope) > 0 {
				scope = scope[:len(scope)-1]
			}
		case ';':
			out = append(out, aptStatement(scope, pending)...)
		}
		pending = nil
	}
	return out
}

// aptStatement is the statement toks within scope.
func aptStatement(scope []string, toks []aptToken) []aptStmt {
	if len(toks) == 0 {
		return nil
	}
	join := func(tag string) string {
		var parts []string
		for _, s := range scope {
			if s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(append(parts, tag), "::")
	}
	first := toks[0]
	switch {
	case first.quoted: // a list item: "value";
		return []aptStmt{{key: join(""), value: first.text, list: true}}
	case strings.EqualFold(first.text, "#clear"):
		var out []aptStmt
		for _, t := range toks[1:] {
			out = append(out, aptStmt{key: join(t.text), clear: true})
		}
		return out
	case strings.HasPrefix(first.text, "#"):
		return []aptStmt{{key: strings.ToLower(first.text), directive: true}}
	case len(toks) < 2:
		return nil
	}
	key := join(first.text)
	if strings.HasSuffix(key, "::") {
		return []aptStmt{{key: key, value: toks[1].text, list: true}}
	}
	return []aptStmt{{key: key, value: toks[1].text}}
}

// aptBaseKey is key in lower case without a list's trailing "::".
func aptBaseKey(key string) string { return strings.ToLower(strings.TrimSuffix(key, "::")) }

// filterAptConf keeps the allowlisted statements of an apt configuration file, written again
// one per line. A value that could not be written back as it was read (a newline in it) is
// dropped.
func filterAptConf(data []byte) ([]byte, []string) {
	var out bytes.Buffer
	var dropped []string
	for _, s := range aptStatements(string(data)) {
		base := aptBaseKey(s.key)
		ok := !s.directive && aptAllowed[base] && !strings.ContainsAny(s.value, "\r\n\x00") && !strings.ContainsAny(s.key, "\r\n\x00")
		if !ok {
			name := strings.TrimSuffix(s.key, "::")
			if s.directive {
				name = s.key
			}
			dropped = appendOnce(dropped, name)
			continue
		}
		switch {
		case s.clear:
			out.WriteString("#clear " + strings.TrimSuffix(s.key, "::") + ";\n")
		case s.list:
			out.WriteString(strings.TrimSuffix(s.key, "::") + " { \"" + s.value + "\"; };\n")
		default:
			out.WriteString(s.key + " \"" + s.value + "\";\n")
		}
	}
	return keptOrNil(out.Bytes(), "// vm2image: the allowlisted keys of the VM's file\n"), dropped
}

// filterDpkgCfg keeps the allowlisted options of a dpkg configuration file (one option a line,
// "name value" or "name=value", '#' comments).
func filterDpkgCfg(data []byte) ([]byte, []string) {
	var out bytes.Buffer
	var dropped []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name := strings.TrimPrefix(line, "--")
		if i := strings.IndexAny(name, " \t="); i >= 0 {
			name = name[:i]
		}
		if !dpkgAllowed[strings.ToLower(name)] || strings.ContainsRune(line, 0) {
			dropped = appendOnce(dropped, name)
			continue
		}
		out.WriteString(line + "\n")
	}
	return keptOrNil(out.Bytes(), "# vm2image: the allowlisted options of the VM's file\n"), dropped
}

// keptOrNil is body under header, or nil when nothing was kept.
func keptOrNil(body []byte, header string) []byte {
	if len(body) == 0 {
		return nil
	}
	return append([]byte(header), body...)
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Allowlists of the INI files of dnf, yum and zypper (lower case).
var (
	repoAllowed = setOf("name", "baseurl", "mirrorlist", "metalink", "enabled", "gpgcheck", "repo_gpgcheck",
		"pkg_gpgcheck", "gpgkey", "priority", "cost", "exclude", "excludepkgs", "includepkgs", "module_hotfixes",
		"skip_if_unavailable", "type", "autorefresh", "keeppackages", "path", "countme", "metadata_expire",
		"sslverify", "enabled_metadata", "failovermethod", "username", "password")
	dnfMainAllowed = setOf("install_weak_deps", "tsflags", "installonly_limit", "installonlypkgs", "exclude",
		"excludepkgs", "includepkgs", "best", "skip_if_unavailable", "multilib_policy", "gpgcheck", "repo_gpgcheck",
		"localpkg_gpgcheck", "keepcache", "clean_requirements_on_remove", "obsoletes", "override_install_langs",
		"deltarpm", "fastestmirror", "max_parallel_downloads", "retries", "timeout", "minrate",
		"module_platform_id", "countme", "metadata_expire", "zchunk", "exactarch", "diskspacecheck",
		"protect_running_kernel", "sslverify", "ip_resolve")
	zyppMainAllowed = setOf("solver.onlyrequires", "solver.allowvendorchange", "rpm.install.excludedocs",
		"multiversion", "multiversion.kernels", "solver.dupallowdowngrade", "download.max_silent_tries",
		"commit.downloadmode")
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// iniFilter keeps, in an INI file, the keys of [main] in main and those of every other
// section in other; a continuation line (leading blank) follows its key.
func iniFilter(main, other map[string]bool) fileFilter {
	return func(data []byte) ([]byte, []string) {
		var out bytes.Buffer
		var dropped []string
		section, keep := "", false
		for _, raw := range strings.Split(string(data), "\n") {
			line := strings.TrimSpace(raw)
			switch {
			case line == "" || line[0] == '#' || line[0] == ';':
				continue
			case raw[0] == ' ' || raw[0] == '\t':
				if keep && !strings.ContainsRune(line, 0) {
					out.WriteString("\t" + line + "\n")
				}
				continue
			case line[0] == '[':
				section, keep = strings.Trim(line, "[] \t"), false
				out.WriteString("[" + section + "]\n")
				continue
			}
			allowed := other
			if strings.EqualFold(section, "main") {
				allowed = main
			}
			k, v, _ := strings.Cut(line, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			if keep = allowed[k] && !strings.ContainsRune(line, 0); !keep {
				dropped = appendOnce(dropped, "["+section+"] "+k)
				continue
			}
			out.WriteString(k + "=" + strings.TrimSpace(v) + "\n")
		}
		return keptOrNil(out.Bytes(), "# vm2image: the allowlisted keys of the VM's file\n"), dropped
	}
}

// pacmanAllowed are pacman.conf's directives carried, in any section (lower case); Include
// only of a file in /etc/pacman.d, which is carried (and filtered) too.
var pacmanAllowed = setOf("architecture", "siglevel", "localfilesiglevel", "remotefilesiglevel", "noextract",
	"noupgrade", "ignorepkg", "ignoregroup", "holdpkg", "paralleldownloads", "color", "checkspace",
	"ilovecandy", "verbosepkglists", "disabledownloadtimeout", "noprogressbar", "server", "usage",
	"cacheserver", "include")

// filterPacmanConf keeps pacman.conf's allowlisted directives (HookDir, XferCommand, the
// paths of DBPath, CacheDir and the like are not).
func filterPacmanConf(data []byte) ([]byte, []string) {
	var out bytes.Buffer
	var dropped []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#':
			continue
		case line[0] == '[':
			out.WriteString(line + "\n")
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		ok := pacmanAllowed[strings.ToLower(k)] && !strings.ContainsRune(line, 0)
		if ok && strings.EqualFold(k, "include") {
			p := path.Clean(v)
			ok = p == v && strings.HasPrefix(p, "/etc/pacman.d/") && !strings.HasPrefix(p, "/etc/pacman.d/hooks") &&
				!strings.HasPrefix(p, "/etc/pacman.d/gnupg")
		}
		if !ok {
			dropped = appendOnce(dropped, k)
			continue
		}
		out.WriteString(line + "\n")
	}
	return keptOrNil(out.Bytes(), "# vm2image: the allowlisted directives of the VM's file\n"), dropped
}
