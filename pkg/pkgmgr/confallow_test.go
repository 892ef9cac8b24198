package pkgmgr

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hostileAptConf hides hooks in every syntax apt accepts.
var hostileAptConf = `// a VM's apt.conf.d, written by an attacker
APT::Install-Recommends "false";
APT::Update::Pre-Invoke { "touch /proc/1/root/tmp/pwned"; };
DPkg
{
  Pre-Invoke { "sh -c 'id > /tmp/x'"; };   # a comment
  Post-Invoke:: "true";
  Tools::Options::/usr/bin/evil "";
};
/* a block
   comment */ Acquire::Languages "none";
Acquire { http { Proxy "http://10.0.0.1:3128"; }; Check-Valid-Until "false"; };
Dir::Etc::Parts "/tmp/evil";
#include "/proc/1/root/etc/apt/apt.conf";
#clear APT::Update;
APT::Architectures { "amd64"; "i386"; };
Acquire::Languages:: "de";
`

func TestFilterAptConf(t *testing.T) {
	files := map[string][]byte{"/etc/apt/apt.conf.d/99evil": []byte(hostileAptConf)}
	out, dropped := FilterConfig(Dpkg, files)
	got := string(out["/etc/apt/apt.conf.d/99evil"])
	for _, want := range []string{`APT::Install-Recommends "false";`, `Acquire::Languages "none";`,
		`Acquire::Check-Valid-Until "false";`, `APT::Architectures { "amd64"; };`, `APT::Architectures { "i386"; };`,
		`Acquire::Languages { "de"; };`} {
		if !strings.Contains(got, want) {
			t.Errorf("filtered file lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"Invoke", "touch", "Proxy", "Dir::", "include", "Tools", "clear"} {
		if strings.Contains(got, bad) {
			t.Errorf("filtered file holds %q:\n%s", bad, got)
		}
	}
	var keys []string
	for _, d := range dropped {
		keys = append(keys, d.Key)
	}
	want := []string{"#include", "APT::Update", "APT::Update::Pre-Invoke", "Acquire::http::Proxy", "DPkg::Post-Invoke",
		"DPkg::Pre-Invoke", "DPkg::Tools::Options::/usr/bin/evil", "Dir::Etc::Parts"}
	if !slices.Equal(keys, want) {
		t.Errorf("dropped %q, want %q", keys, want)
	}
}

func TestFilterDpkgCfgAndFiles(t *testing.T) {
	files := map[string][]byte{
		"/etc/dpkg/dpkg.cfg.d/excludes": []byte("# docs\npath-exclude=/usr/share/doc/*\n  path-include /usr/share/doc/*/copyright\n" +
			"post-invoke=touch /tmp/x\n--pre-invoke rm -rf /\nlog /proc/1/root/tmp/log\nadmindir=/tmp\nstatus-logger=cat\nforce-all\n"),
		"/etc/dpkg/dpkg.cfg.d/hooks-only": []byte("pre-invoke=/bin/evil\n"),
		"/etc/apt/sources.list":           []byte("deb [trusted=yes] file:/srv/repo ./\n"),
		"/etc/apt/auth.conf":              []byte("machine x login y password z\n"),
		"/etc/apt/trusted.gpg.d/k.gpg":    {0x99, 0x01},
	}
	out, dropped := FilterConfig(Dpkg, files)
	if got := string(out["/etc/dpkg/dpkg.cfg.d/excludes"]); !strings.Contains(got, "path-exclude=/usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n") || strings.Contains(got, "invoke") || strings.Contains(got, "log") {
		t.Errorf("filtered dpkg.cfg:\n%s", got)
	}
	if _, ok := out["/etc/dpkg/dpkg.cfg.d/hooks-only"]; ok {
		t.Error("a file with nothing allowed was carried")
	}
	if !bytes.Equal(out["/etc/apt/sources.list"], files["/etc/apt/sources.list"]) || len(out["/etc/apt/trusted.gpg.d/k.gpg"]) != 2 {
		t.Error("sources.list or a key was changed")
	}
	if _, ok := out["/etc/apt/auth.conf"]; ok {
		t.Error("a file outside the carried set was carried")
	}
	var got []string
	for _, d := range dropped {
		got = append(got, d.String())
	}
	for _, want := range []string{"/etc/apt/auth.conf: (file)", "/etc/dpkg/dpkg.cfg.d/excludes: post-invoke",
		"/etc/dpkg/dpkg.cfg.d/excludes: pre-invoke", "/etc/dpkg/dpkg.cfg.d/excludes: log", "/etc/dpkg/dpkg.cfg.d/excludes: admindir",
		"/etc/dpkg/dpkg.cfg.d/excludes: status-logger", "/etc/dpkg/dpkg.cfg.d/excludes: force-all", "/etc/dpkg/dpkg.cfg.d/hooks-only: pre-invoke"} {
		if !slices.Contains(got, want) {
			t.Errorf("dropped %q lacks %q", got, want)
		}
	}
}

func TestFilterOtherManagers(t *testing.T) {
	for _, tc := range []struct {
		m             Manager
		file, in      string
		keep, dropped []string
	}{
		{RPM, "/etc/dnf/dnf.conf", "[main]\ninstall_weak_deps=False\npluginpath=/tmp/p\nplugins=1\nproxy=http://x\n[extra]\nbaseurl=http://a\n http://b\nsslclientkey=/k\n",
			[]string{"install_weak_deps=False", "baseurl=http://a\n\thttp://b"}, []string{"[extra] sslclientkey", "[main] pluginpath", "[main] plugins", "[main] proxy"}},
		{RPM, "/etc/yum.repos.d/x.repo", "[x]\nname=X\nbaseurl=http://r\ngpgkey=file:///etc/pki/rpm-gpg/K\nproxy=http://p\n",
			[]string{"baseurl=http://r", "gpgkey=file:///etc/pki/rpm-gpg/K"}, []string{"[x] proxy"}},
		{RPM, "/etc/zypp/zypp.conf", "[main]\nsolver.onlyRequires = true\nconfigdir=/tmp\n", []string{"solver.onlyrequires=true"}, []string{"[main] configdir"}},
		{RPM, "/etc/dnf/plugins/evil.conf", "[main]\nenabled=1\n", nil, []string{"(file)"}},
		{Pacman, "/etc/pacman.conf", "[options]\nHookDir = /tmp/h\nXferCommand = /usr/bin/curl %u\nCheckSpace\nNoExtract = usr/share/doc/*\nDBPath=/tmp\n[core]\nInclude = /etc/pacman.d/mirrorlist\nInclude = /etc/pacman.d/hooks/x\nInclude = /proc/1/root/etc/x\n",
			[]string{"CheckSpace", "NoExtract = usr/share/doc/*", "Include = /etc/pacman.d/mirrorlist"}, []string{"DBPath", "HookDir", "Include", "XferCommand"}},
		{Pacman, "/etc/pacman.d/hooks/evil.hook", "[Action]\nExec = /bin/sh\n", nil, []string{"(file)"}},
		{Pacman, "/etc/pacman.d/gnupg/gpg.conf", "exec-path /tmp\n", nil, []string{"(file)"}},
		{APK, "/etc/apk/repositories", "https://dl-cdn.alpinelinux.org/alpine/v3.19/main\n", []string{"alpine/v3.19/main"}, nil},
		{APK, "/etc/apk/commit_hooks.d/x", "#!/bin/sh\n", nil, []string{"(file)"}},
	} {
		out, dropped := FilterConfig(tc.m, map[string][]byte{tc.file: []byte(tc.in)})
		got := string(out[tc.file])
		for _, k := range tc.keep {
			if !strings.Contains(got, k) {
				t.Errorf("%s: kept %q, want %q in it", tc.file, got, k)
			}
		}
		var keys []string
		for _, d := range dropped {
			keys = append(keys, d.Key)
		}
		if !slices.Equal(keys, tc.dropped) {
			t.Errorf("%s: dropped %q, want %q", tc.file, keys, tc.dropped)
		}
	}
}

// TestFilterAptConfAgainstApt has apt's own parser (apt-config dump) read the hostile file and
// its filtered form: apt must see the hooks in the first, and only allowlisted keys in the second.
func TestFilterAptConfAgainstApt(t *testing.T) {
	if _, err := exec.LookPath("apt-config"); err != nil {
		t.Skip("no apt-config")
	}
	dump := func(text string) map[string]bool {
		p := filepath.Join(t.TempDir(), "apt.conf")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("apt-config", "dump", "--format", "%f\n")
		cmd.Env = append(os.Environ(), "APT_CONFIG="+p)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("apt-config: %v", err)
		}
		keys := map[string]bool{}
		for _, l := range strings.Split(string(out), "\n") {
			keys[aptBaseKey(l)] = true
		}
		return keys
	}
	// The #include names a file that does not exist (apt would refuse the whole file), and the
	// #clear would hide the first hook from apt.
	hostile := strings.NewReplacer(`#include "/proc/1/root/etc/apt/apt.conf";`, "", "#clear APT::Update;", "").Replace(hostileAptConf)
	empty, raw := dump(""), dump(hostile)
	for _, k := range []string{"apt::update::pre-invoke", "dpkg::pre-invoke", "dir::etc::parts"} {
		if !raw[k] {
			t.Fatalf("apt does not see %s in the hostile file: the test is wrong", k)
		}
	}
	out, _ := FilterConfig(Dpkg, map[string][]byte{"/etc/apt/apt.conf": []byte(hostile)})
	for k := range dump(string(out["/etc/apt/apt.conf"])) {
		if !empty[k] && !aptAllowed[k] {
			t.Errorf("apt reads %s from the filtered file", k)
		}
	}
}
