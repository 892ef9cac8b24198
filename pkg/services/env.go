package services

import (
	"slices"
	"strings"
)

// A service's environment can hold secrets (API keys, database passwords) that live in the
// VM's memory, not in its files: they enter an image only through this allowlist, unless the
// operator asks for them all (`convert --keep-service-env`).

// allowedEnv are the variables that describe the process's setting, never a secret.
var allowedEnv = map[string]bool{
	"PATH": true, "LANG": true, "LANGUAGE": true, "HOME": true, "USER": true, "LOGNAME": true,
	"SHELL": true, "TZ": true, "TERM": true, "TMPDIR": true,
}

// EnvAllowed reports whether the variable name may enter an image by default: PATH, LANG,
// LANGUAGE, LC_*, HOME, USER, LOGNAME, SHELL, TZ, TERM and TMPDIR. PWD and the session's
// variables are dropped earlier (they belong to a login, not to the service); HOSTNAME is the
// container's own.
func EnvAllowed(name string) bool {
	return allowedEnv[name] || strings.HasPrefix(name, "LC_") && len(name) > 3
}

// EnvLeftOut names the variables of one service that were left out of the image.
type EnvLeftOut struct {
	Service string   `json:"service"`
	Names   []string `json:"names"` // never the values
}

// FilterEnv keeps the allowed variables of every service of c and returns, per service, the
// names of those it left out, sorted.
func (c *Config) FilterEnv() []EnvLeftOut {
	var out []EnvLeftOut
	for i := range c.Services {
		s := &c.Services[i]
		var kept, left []string
		for _, e := range s.Env {
			k, _, _ := strings.Cut(e, "=")
			if EnvAllowed(k) {
				kept = append(kept, e)
			} else {
				left = append(left, k)
			}
		}
		s.Env = kept
		if len(left) > 0 {
			slices.Sort(left)
			out = append(out, EnvLeftOut{Service: s.Name, Names: slices.Compact(left)})
		}
	}
	return out
}
