package pkgmgr

import (
	"bytes"
	"testing"
)

// FuzzFilterConfig feeds any text as each kind of configuration file: the filter must not
// panic, what it keeps must parse back to allowlisted keys only, and filtering its own output
// again must drop nothing and change nothing (what it writes reads as it meant).
func FuzzFilterConfig(f *testing.F) {
	for _, s := range []string{hostileAptConf, "path-exclude=/usr/share/doc/*\npost-invoke=x\n",
		"[main]\nplugins=1\ninstall_weak_deps=0\n[r]\nbaseurl=a\n b\n", "[options]\nHookDir=/x\nInclude = /etc/pacman.d/m\n",
		`A { B { "x"; }; }; #clear A::B; "q";`, "APT::Install-Recommends \"0\" /* x */ ;"} {
		f.Add(s)
	}
	cases := []struct {
		m    Manager
		path string
	}{
		{Dpkg, "/etc/apt/apt.conf.d/50x"}, {Dpkg, "/etc/dpkg/dpkg.cfg"}, {RPM, "/etc/dnf/dnf.conf"},
		{RPM, "/etc/zypp/repos.d/a.repo"}, {Pacman, "/etc/pacman.conf"},
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, c := range cases {
			out, _ := FilterConfig(c.m, map[string][]byte{c.path: []byte(text)})
			kept, ok := out[c.path]
			if !ok {
				continue
			}
			again, dropped := FilterConfig(c.m, map[string][]byte{c.path: kept})
			if len(dropped) > 0 || !bytes.Equal(again[c.path], kept) {
				t.Fatalf("%s: filtering the filtered file dropped %v or changed it:\n%q\n%q", c.path, dropped, kept, again[c.path])
			}
			if c.path == "/etc/apt/apt.conf.d/50x" {
				for _, s := range aptStatements(string(kept)) {
					if s.directive || !aptAllowed[aptBaseKey(s.key)] {
						t.Fatalf("kept %+v from %q", s, text)
					}
				}
			}
		}
	})
}
