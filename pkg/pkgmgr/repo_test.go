package pkgmgr

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// aptConfCases are sets of apt configuration files (name in apt.conf.d, or "apt.conf" for the
// main file) that apt accepts.
var aptConfCases = []map[string]string{
	{},
	{"99norecommends": `APT::Install-Recommends "false";`},
	{"99norecommends": `APT::Install-Recommends "0";`},
	{"99x": `APT::Install-Recommends "1";`},
	{"99x": `APT::Install-Recommends "off";` + "\n"},
	{"99x": `APT::Install-Recommends "No";`},
	{"99x": `APT::Install-Recommends "without";`},
	{"99x": `APT::Install-Recommends "maybe";`},
	{"99x": `APT::Install-Recommends "";`},
	{"99x": `APT::Install-Recommends "2";`},
	{"99x": `APT::Install-Recommends "0x1";`},
	{"99x": `apt::install-recommends "false";`},
	{"99x": `APT::Install-Recommends false;`},
	{"99x": "APT\n{\n  Install-Recommends \"false\";\n  Install-Suggests \"false\";\n};\n"},
	{"99x": `APT { Get { Assume-Yes "true"; }; Install-Recommends "0"; };`},
	{"99x": `APT::Get { Install-Recommends "false"; };`},
	{"99x": "// APT::Install-Recommends \"false\";\n"},
	{"99x": "# APT::Install-Recommends \"false\";\n"},
	{"99x": "/* APT::Install-Recommends \"false\"; */\nAPT::Install-Suggests \"0\";\n"},
	{"99x": "/*\n APT::Install-Recommends \"false\";\n*/\n"},
	{"99x": `APT::Install-Recommends "false"; // trailing comment`},
	{"10a": `APT::Install-Recommends "false";`, "20b": `APT::Install-Recommends "true";`},
	{"10a": `APT::Install-Recommends "true";`, "20b": `APT::Install-Recommends "false";`},
	{"20b": `APT::Install-Recommends "false";`, "apt.conf": `APT::Install-Recommends "true";`},
	{"99x.conf": `APT::Install-Recommends "false";`},
	{"99x.disabled": `APT::Install-Recommends "false";`},
	{"99x.dpkg-old": `APT::Install-Recommends "false";`},
	{"99x": `APT::Install-Recommends "false";`, "99y": "#clear APT::Install-Recommends;\n"},
	{"99x": `Acquire::http::Proxy "http://proxy:3128"; APT::Install-Recommends "false";`},
	{"99x": `DPkg::Post-Invoke { "rm -f /var/cache/apt/*.bin || true"; }; APT::Install-Recommends "false";`},
	{"99x": `APT::Install-Recommends "false"; APT::Install-Recommends "true";`},
	{"99x": `APT::Install-Recommends "FALSE";`},
	{"99x": "APT::Install-Recommends\t\"false\"\t;"},
	{"99x": `Foo { APT::Install-Recommends "false"; };`},
	{"99x": `Foo::Bar "x"; apt { install-recommends false; };`},
	{"99x": `APT::Never-MarkAuto-Sections { "metapackages"; "restricted/metapackages"; }; APT::Install-Recommends "no";`},
}

// aptConfigOracle asks apt-config what apt makes of the files, with nothing of this machine's
// configuration read.
func aptConfigOracle(t *testing.T, files map[string]string) bool {
	t.Helper()
	dir := t.TempDir()
	parts := filepath.Join(dir, "apt.conf.d")
	main := filepath.Join(dir, "apt.conf")
	writeFiles(t, dir, map[string]string{"boot.conf": "Dir::Etc::parts \"" + parts + "\";\nDir::Etc::main \"" + main + "\";\n"})
	if err := os.MkdirAll(parts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(parts, name)
		if name == "apt.conf" {
			p = main
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("apt-config", "shell", "R", "APT::Install-Recommends/b")
	cmd.Env = append(os.Environ(), "APT_CONFIG="+filepath.Join(dir, "boot.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apt-config: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out)) == "R='true'"
}

// vmConf turns case files into a conf map keyed by path in the VM.
func vmConf(files map[string]string) map[string]string {
	conf := map[string]string{}
	for name, content := range files {
		if name == "apt.conf" {
			conf["/etc/apt/apt.conf"] = content
		} else {
			conf["/etc/apt/apt.conf.d/"+name] = content
		}
	}
	return conf
}

func TestRecommendsDefaultAptConfig(t *testing.T) {
	testenv.RequireCommands(t, "apt-config")
	for i, files := range aptConfCases {
		want := aptConfigOracle(t, files)
		if got := RecommendsDefault(Dpkg, vmConf(files)); got != want {
			t.Errorf("case %d %q: RecommendsDefault = %v, apt-config says %v", i, files, got, want)
		}
	}
	// This machine's own configuration, read from disk as a converter would receive it.
	conf := map[string]string{}
	for _, pattern := range []string{"/etc/apt/apt.conf", "/etc/apt/apt.conf.d/*"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if b, err := os.ReadFile(m); err == nil {
				conf[m] = string(b)
			}
		}
	}
	out, err := exec.Command("apt-config", "shell", "R", "APT::Install-Recommends/b").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(out)) == "R='true'"; RecommendsDefault(Dpkg, conf) != want {
		t.Errorf("this machine: RecommendsDefault = %v, apt-config says %v", !want, want)
	}
	t.Logf("%d configurations agree with apt-config", len(aptConfCases)+1)
}

func TestRecommendsDefaultOthers(t *testing.T) {
	tests := []struct {
		m    Manager
		conf map[string]string
		want bool
	}{
		{RPM, map[string]string{"/etc/dnf/dnf.conf": "[main]\ngpgcheck=1\n"}, true},
		{RPM, map[string]string{"/etc/dnf/dnf.conf": "[main]\ninstall_weak_deps=False\n"}, false},
		{RPM, map[string]string{"etc/dnf/dnf.conf": "[main]\ninstall_weak_deps = 0\n"}, false},
		{RPM, map[string]string{"/etc/dnf/dnf.conf": "[other]\ninstall_weak_deps=0\n[main]\n"}, true},
		{RPM, map[string]string{"/etc/dnf/dnf.conf": "[main]\n# install_weak_deps=0\n"}, true},
		{RPM, map[string]string{"/etc/zypp/zypp.conf": "[main]\nsolver.onlyRequires = true\n"}, false},
		{RPM, map[string]string{"/etc/zypp/zypp.conf": "[main]\n# solver.onlyRequires = false\n"}, true},
		{RPM, map[string]string{"/etc/yum.conf": "[main]\n"}, false},
		{RPM, nil, true},
		{APK, nil, false},
		{Pacman, nil, false},
		{Dpkg, nil, true},
	}
	for i, tt := range tests {
		if got := RecommendsDefault(tt.m, tt.conf); got != tt.want {
			t.Errorf("case %d (%s %v): %v, want %v", i, tt.m, tt.conf, got, tt.want)
		}
	}
}

func TestRepoConfigPaths(t *testing.T) {
	for _, m := range []Manager{Dpkg, RPM, APK, Pacman} {
		paths := RepoConfigPaths(m)
		if len(paths) == 0 {
			t.Errorf("%s: no paths", m)
		}
		for _, p := range paths {
			if !filepath.IsAbs(p) || filepath.Clean(p)+map[bool]string{true: "/"}[strings.HasSuffix(p, "/")] != p {
				t.Errorf("%s: path %q is not absolute and clean", m, p)
			}
		}
	}
	if RepoConfigPaths("nix") != nil {
		t.Errorf("unknown manager has paths")
	}
}

// FuzzAptConf feeds any text as an apt.conf.d file: the parser never fails, and a later file
// that sets APT::Install-Recommends decides, whatever the earlier one holds (apt reads each
// file on its own).
func FuzzAptConf(f *testing.F) {
	for _, files := range aptConfCases {
		for _, content := range files {
			f.Add(content)
		}
	}
	f.Add("APT { Install-Recommends \"0\"; ")
	f.Add("/* unterminated")
	f.Add("\"unterminated")
	f.Add("#clear ;;; }}} {{{")
	f.Fuzz(func(t *testing.T, text string) {
		RecommendsDefault(Dpkg, map[string]string{"/etc/apt/apt.conf.d/10x": text})
		for _, want := range []bool{true, false} {
			conf := map[string]string{
				"/etc/apt/apt.conf.d/10x": text,
				"/etc/apt/apt.conf.d/99z": map[bool]string{true: `APT::Install-Recommends "true";`, false: `APT::Install-Recommends "false";`}[want],
			}
			if got := RecommendsDefault(Dpkg, conf); got != want {
				t.Fatalf("a later file setting %v lost to %q", want, text)
			}
		}
	})
}
