package services_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// TestSelectFixtureVM selects the services of the running fixture VM from the agent's real
// process list: nginx (root master, www-data workers, v4 and v6) and the app's busybox httpd,
// nothing else: not the agent (the VM's PID 1 here), not nginx's workers.
func TestSelectFixtureVM(t *testing.T) {
	testenv.Short(t)
	vm := testenv.StartWebVM(t)
	ctx := context.Background()
	src, err := source.Open(ctx, vm.Addr, source.Options{Token: vm.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ps, err := src.Processes(ctx, wire.ProcessArgs{Env: true})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	got := services.Select(ps, services.SelectOptions{IncludeEnv: true, Notef: func(f string, a ...any) {
		notes = append(notes, f)
	}})
	for _, s := range got {
		t.Logf("service %+v", s)
	}
	if len(got) != 2 {
		t.Fatalf("%d services, want 2 (nginx, busybox-httpd)", len(got))
	}
	nginx, app := got[1], got[0] // sorted by name
	np, ap := vm.Ports["nginx"], vm.Ports["app"]
	want := services.Service{
		Name: "nginx", Argv: []string{"/usr/sbin/nginx"}, Exe: "/usr/sbin/nginx", User: "root", Cwd: "/", Restart: "no",
		Ports:      []services.Port{{Proto: "tcp", Port: np, Addr: "0.0.0.0"}, {Proto: "tcp", Port: np, Addr: "::"}},
		Foreground: []string{"/usr/sbin/nginx", "-g", "daemon off;"},
	}
	// nginx overwrote its environment area with its title: nothing of it is kept.
	if diff := cmp.Diff(want, nginx); diff != "" {
		t.Errorf("nginx (-want +got):\n%s", diff)
	}
	if app.Name != "busybox-httpd" || app.User != "app" || app.UID != 1001 || app.GID != 1001 || app.Cwd != "/srv/app/public" {
		t.Errorf("app service %+v", app)
	}
	wantArgv := []string{"busybox", "httpd", "-f", "-p", "127.0.0.1:" + strconv.Itoa(ap), "-h", "/srv/app/public"}
	if !slices.Equal(app.Command(), wantArgv) || slices.Contains(app.Argv, "-f") {
		t.Errorf("app argv %q, command %q, want command %q", app.Argv, app.Command(), wantArgv)
	}
	if !cmp.Equal(app.Ports, []services.Port{{Proto: "tcp", Port: ap, Addr: "127.0.0.1"}}) {
		t.Errorf("app ports %+v", app.Ports)
	}
	if !slices.Contains(app.Env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") || slices.ContainsFunc(app.Env, func(e string) bool { return strings.HasPrefix(e, "PWD=") }) {
		t.Errorf("app env %q", app.Env)
	}
	if len(notes) != 1 {
		t.Errorf("notes %q, want one (the agent)", notes)
	}
	if err := (services.Config{Services: got}).Validate(); err != nil {
		t.Errorf("selected services do not validate: %v", err)
	}
}
