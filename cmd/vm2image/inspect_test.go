package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/procs"
)

// dpkgOracle lists the installed packages of root the way Debian's own dpkg-query does.
func dpkgOracle(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W",
		"-f", "${db:Status-Abbrev}|${Package} ${Version} ${Architecture}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		st, rest, _ := strings.Cut(l, "|")
		if strings.HasPrefix(st, "ii") {
			lines = append(lines, rest)
		}
	}
	sort.Strings(lines)
	return lines
}

func runInspectJSON(t *testing.T, spec string, o inspectOptions) *InspectReport {
	t.Helper()
	o.json = true
	var buf bytes.Buffer
	if err := runInspect(context.Background(), o, spec, &buf); err != nil {
		t.Fatalf("inspect %s: %v", spec, err)
	}
	var rep InspectReport
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("decoding inspect --json: %v\n%s", err, buf.String())
	}
	return &rep
}

// TestInspectFixtureVM inspects a running fixture VM through its agent, over TCP.
func TestInspectFixtureVM(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "dpkg-query")
	vm := testenv.StartWebVM(t)
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, string(vm.Token)+"\n")
	rep := runInspectJSON(t, vm.Addr, inspectOptions{sourceOptions: sourceOptions{tokenFile: tok}, recommends: true})

	if rep.Info.OS.ID != "debian" || rep.Info.OS.VersionID != "12" {
		t.Errorf("os = %+v, want debian 12", rep.Info.OS)
	}
	if rep.PackageManager != "dpkg" {
		t.Errorf("package manager = %q", rep.PackageManager)
	}
	var got []string
	for _, p := range rep.Packages {
		got = append(got, fmt.Sprintf("%s %s %s", p.Name, p.Version, p.Arch))
	}
	sort.Strings(got)
	if d := cmp.Diff(dpkgOracle(t, vm.Root), got); d != "" {
		t.Errorf("packages differ from dpkg-query (-want +got):\n%s", d)
	}
	if rep.PackageCount != len(got) || rep.RootCount == 0 || rep.RootCount >= rep.PackageCount {
		t.Errorf("package count %d, roots %d: implausible", rep.PackageCount, rep.RootCount)
	}
	for _, want := range []string{"nginx-light", "busybox"} {
		if !contains(rep.Roots, want) {
			t.Errorf("root %s missing from %v", want, rep.Roots)
		}
	}

	nginx := findListener(rep.Services, vm.Ports["nginx"])
	if nginx == nil {
		t.Fatalf("no process listens on nginx's port %d: %+v", vm.Ports["nginx"], rep.Services)
	}
	if nginx.User != "root" || len(nginx.Argv) == 0 || !strings.HasPrefix(nginx.Argv[0], "nginx: master process") {
		t.Errorf("nginx listener: user %q argv %q", nginx.User, nginx.Argv)
	}
	if !hasProto(nginx, "tcp") || !hasProto(nginx, "tcp6") {
		t.Errorf("nginx should listen on tcp and tcp6: %+v", nginx.Listening)
	}
	app := findListener(rep.Services, vm.Ports["app"])
	if app == nil {
		t.Fatalf("no process listens on the app's port %d", vm.Ports["app"])
	}
	wantArgv := []string{"busybox", "httpd", "-p", fmt.Sprintf("127.0.0.1:%d", vm.Ports["app"]), "-h", "/srv/app/public"}
	if app.User != "app" || app.UID != 1001 || !cmp.Equal(app.Argv, wantArgv) {
		t.Errorf("app listener: user %q uid %d argv %q, want app 1001 %q", app.User, app.UID, app.Argv, wantArgv)
	}
	for _, p := range rep.Services {
		if strings.Contains(strings.Join(p.Argv, " "), "vm2image-agent") {
			continue // the agent itself listens too; convert leaves it out
		}
		if p.PID <= 0 || p.PID > 100 {
			t.Errorf("pid %d: the VM's own pid namespace should give small pids", p.PID)
		}
	}

	// The human-readable form names the same facts.
	var buf bytes.Buffer
	if err := runInspect(context.Background(), inspectOptions{sourceOptions: sourceOptions{tokenFile: tok}, recommends: true}, vm.Addr, &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Debian GNU/Linux 12 (bookworm)", "amd64", fmt.Sprintf("%d installed (dpkg)", len(got)), "busybox httpd -p"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestInspectDirSource reads the same root in-process (dir:), where processes are those running
// chrooted in that directory.
func TestInspectDirSource(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "dpkg-query")
	vm := testenv.StartWebVM(t)
	rep := runInspectJSON(t, "dir:"+vm.Root, inspectOptions{recommends: true})
	var got []string
	for _, p := range rep.Packages {
		got = append(got, fmt.Sprintf("%s %s %s", p.Name, p.Version, p.Arch))
	}
	sort.Strings(got)
	if d := cmp.Diff(dpkgOracle(t, vm.Root), got); d != "" {
		t.Errorf("packages differ from dpkg-query (-want +got):\n%s", d)
	}
	if app := findListener(rep.Services, vm.Ports["app"]); app == nil || app.User != "app" {
		t.Errorf("dir: source should see the chrooted app service as user app: %+v", rep.Services)
	}
}

func TestInspectBadSources(t *testing.T) {
	for _, spec := range []string{"nonsense", "dir:/nonexistent/vm2image", "tar:/nonexistent.tar"} {
		err := runInspect(context.Background(), inspectOptions{}, spec, &bytes.Buffer{})
		if err == nil {
			t.Errorf("inspect %s: no error", spec)
		}
	}
	err := runInspect(context.Background(), inspectOptions{}, "127.0.0.1:1", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("inspect without a token: %v", err)
	}
}

func findListener(ps []procs.Process, port int) *procs.Process {
	for i := range ps {
		for _, s := range ps[i].Listening {
			if s.Port == port {
				return &ps[i]
			}
		}
	}
	return nil
}

func hasProto(p *procs.Process, proto string) bool {
	for _, s := range p.Listening {
		if s.Proto == proto {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
