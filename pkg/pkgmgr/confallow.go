package pkgmgr

import (
	"path"
	"sort"
	"strings"
)

// The VM's package manager configuration is data for the build, never code: the builder runs
// the installer in a sandbox, but a hook (APT::Update::Pre-Invoke, dpkg's post-invoke, a
// pacman hook) or a key naming a program, a host path or the VM's own network (Dir::*, proxies)
// has no business there at all. FilterConfig parses every configuration file carried into the
// build root and keeps only allowlisted keys; repository lists and signing keys are data and
// pass whole. Everything left out is reported.

// DroppedConfig is one piece of the VM's configuration left out of the build root: a key of a
// file, "#include" or "(file)" for a whole file.
type DroppedConfig struct {
	File string `json:"file"`
	Key  string `json:"key"`
}

func (d DroppedConfig) String() string { return d.File + ": " + d.Key }

// aptAllowed are the apt keys (lower case) carried: they choose which packages and indexes
// apt takes and how it trusts a repository. Options like [trusted=yes] are data as well: the
// sandbox is what makes an untrusted package harmless.
var aptAllowed = map[string]bool{
	"apt::install-recommends": true, "apt::install-suggests": true, "apt::default-release": true,
	"apt::architectures": true, "apt::never-markauto-sections": true, "apt::get::allowunauthenticated": true,
	"acquire::languages": true, "acquire::check-valid-until": true, "acquire::check-date": true,
	"acquire::allowinsecurerepositories": true, "acquire::allowweakrepositories": true,
	"acquire::allowdowngradetoinsecurerepositories": true, "acquire::gzipindexes": true,
	"acquire::pdiffs": true,
	// Debian's own 01autoremove: regular expressions of what autoremove keeps.
	"apt::neverautoremove": true, "apt::versionedkernelpackages": true, "apt::move-autobit-sections": true,
}

// dpkgAllowed are dpkg's options carried: the path filters, so that a VM without docs or
// locales gets none reinstalled only to be whited out again by its diff.
var dpkgAllowed = map[string]bool{"path-exclude": true, "path-include": true, "no-debsig": true}

// FilterConfig returns files (absolute path in the VM -> content) with every configuration
// file reduced to its allowlisted keys, and what it left out, sorted. Files it does not know
// are left out whole.
func FilterConfig(m Manager, files map[string][]byte) (map[string][]byte, []DroppedConfig) {
	out := make(map[string][]byte, len(files))
	var dropped []DroppedConfig
	for p, data := range files {
		kept, drop := filterFor(m, path.Clean("/"+p))(data)
		for _, k := range drop {
			dropped = append(dropped, DroppedConfig{File: p, Key: k})
		}
		if kept != nil {
			out[p] = kept
		}
	}
	sort.Slice(dropped, func(i, j int) bool {
		if dropped[i].File != dropped[j].File {
			return dropped[i].File < dropped[j].File
		}
		return dropped[i].Key < dropped[j].Key
	})
	return out, dropped
}

// fileFilter reduces one file to its allowed content (nil: leave the file out) and names what
// it dropped.
type fileFilter func(data []byte) ([]byte, []string)

func keepWhole(data []byte) ([]byte, []string) { return data, nil }
func dropWhole([]byte) ([]byte, []string)      { return nil, []string{"(file)"} }

// filterFor picks the filter of a path; what the manager does not carry is dropped whole.
func filterFor(m Manager, p string) fileFilter {
	under := func(dirs ...string) bool {
		for _, d := range dirs {
			if p == strings.TrimSuffix(d, "/") || strings.HasPrefix(p, d) {
				return true
			}
		}
		return false
	}
	switch m {
	case Dpkg:
		switch {
		case p == "/etc/apt/apt.conf" || under("/etc/apt/apt.conf.d/"):
			return filterAptConf
		case p == "/etc/dpkg/dpkg.cfg" || under("/etc/dpkg/dpkg.cfg.d/"):
			return filterDpkgCfg
		case under("/etc/apt/sources.list", "/etc/apt/sources.list.d/", "/etc/apt/trusted.gpg", "/etc/apt/trusted.gpg.d/",
			"/etc/apt/keyrings/", "/etc/apt/preferences", "/etc/apt/preferences.d/", "/usr/share/keyrings/"):
			return keepWhole
		}
	case RPM:
		return rpmFilter(p, under)
	case Pacman:
		switch {
		case under("/etc/pacman.d/hooks/"):
			return dropWhole
		case under("/etc/pacman.d/gnupg/"):
			if strings.HasSuffix(p, ".conf") { // gpg.conf, dirmngr.conf: options naming programs
				return dropWhole
			}
			return keepWhole
		case p == "/etc/pacman.conf" || under("/etc/pacman.d/"):
			return filterPacmanConf
		}
	case APK:
		if p == "/etc/apk/repositories" || under("/etc/apk/keys/") {
			return keepWhole
		}
	}
	return dropWhole
}

// rpmFilter picks the filter of an rpm system's path (dnf, yum, zypper).
func rpmFilter(p string, under func(...string) bool) fileFilter {
	switch {
	case under("/etc/yum.repos.d/", "/etc/zypp/repos.d/"):
		return iniFilter(nil, repoAllowed)
	case p == "/etc/dnf/dnf.conf" || p == "/etc/yum.conf":
		return iniFilter(dnfMainAllowed, repoAllowed)
	case p == "/etc/zypp/zypp.conf":
		return iniFilter(zyppMainAllowed, nil)
	case under("/etc/dnf/vars/", "/etc/yum/vars/", "/etc/pki/rpm-gpg/"):
		return keepWhole
	}
	return dropWhole
}
