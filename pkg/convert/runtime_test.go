package convert

import (
	"archive/tar"
	"bytes"
	"context"
	"github.com/vm2image/vm2image/pkg/source"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/wire"
)

// A dir: source has no processes: the runtime phase and the context are tested here over a
// process list written by hand (what an agent on a live VM reports).

func vmProcesses() []procs.Process {
	return []procs.Process{
		{PID: 1, Argv: []string{"/sbin/init"}, Exe: "/sbin/init", User: "root", Comm: "init"},
		{PID: 200, PPID: 1, UID: 33, GID: 33, EUID: 33, User: "www-data", Group: "www-data", Comm: "nginx",
			Argv: []string{"/usr/sbin/nginx", "-g", "daemon off;"}, Exe: "/usr/sbin/nginx", Cwd: "/",
			Env:       []string{"PATH=/usr/sbin:/usr/bin", "LANG=C.UTF-8", "DB_PASSWORD=hunter2"},
			Listening: []procs.Socket{{Proto: "tcp", Addr: "0.0.0.0", Port: 80}}},
		{PID: 300, PPID: 1, User: "root", Comm: "vm2image-agent", Argv: []string{"/usr/local/bin/vm2image-agent", "--token-file", "/root/t"},
			Exe: "/usr/local/bin/vm2image-agent", Listening: []procs.Socket{{Proto: "tcp", Addr: "0.0.0.0", Port: 49153}}},
	}
}

// runtimeRun is a conversion stopped before the runtime phase, with the VM's processes.
func runtimeRun(t *testing.T, keepEnv bool) *run {
	t.Helper()
	initPath, _ := fakeInit(t)
	o := testOptions(t, "/unused", "/unused", initPath)
	o.Output, o.KeepServiceEnv = filepath.Join(t.TempDir(), "img.tar"), keepEnv
	must(t, o.applyDefaults())
	src, err := source.OpenDir(t.TempDir(), "dir:empty") // no units: services come from the processes
	must(t, err)
	t.Cleanup(func() { src.Close() })
	r := &run{opts: o, src: src, report: newReport(o), work: t.TempDir(), procs: vmProcesses(),
		info: &wire.Info{Hostname: "web1", OS: wire.OSRelease{ID: "debian", VersionID: "12"}}}
	r.report.Base.Ref = "debian:12"
	return r
}

// TestRuntimeServices: the VM's listening service (not the agent) enters services.yaml in the
// runtime layer, the report, the Dockerfile and compose.yaml; only allowed environment
// variables enter them, and the report names the others, never their values.
func TestRuntimeServices(t *testing.T) {
	r := runtimeRun(t, false)
	ctx := context.Background()
	must(t, r.runtime(ctx))
	rep := r.report
	if !slices.Equal(rep.Services, []string{"nginx"}) || !slices.Equal(rep.Ports, []string{"80/tcp"}) {
		t.Errorf("services %v ports %v; want nginx on 80/tcp (and not the agent)", rep.Services, rep.Ports)
	}
	if rep.EnvLeftOutCount() != 1 || rep.ServiceEnvLeftOut[0].Names[0] != "DB_PASSWORD" || rep.ServiceEnvKept {
		t.Errorf("env left out %+v; want DB_PASSWORD named", rep.ServiceEnvLeftOut)
	}
	if len(r.layers) != 1 || !slices.Equal(r.roles, []string{"runtime"}) {
		t.Fatalf("layers %v roles %v", r.layers, r.roles)
	}
	conf := runtimeFile(t, r.layers[0].Path, ".vm2image/services.yaml")
	for _, w := range []string{"/usr/sbin/nginx", "daemon off;", "www-data", "LANG=C.UTF-8"} {
		if !strings.Contains(conf, w) {
			t.Errorf("services.yaml lacks %q:\n%s", w, conf)
		}
	}
	cw := &contextWriter{dir: contextDir(r.opts.Output)}
	must(t, r.writeContext(ctx, cw, "vm2image/web1:latest"))
	files := map[string]string{}
	for _, n := range []string{"Dockerfile", "compose.yaml", "services.yaml"} {
		b, err := os.ReadFile(filepath.Join(cw.dir, n))
		must(t, err)
		files[n] = string(b)
	}
	if files["services.yaml"] != conf {
		t.Errorf("context services.yaml differs from the runtime layer's")
	}
	if !strings.Contains(files["Dockerfile"], "EXPOSE 80/tcp") || !strings.Contains(files["Dockerfile"], "FROM debian:12") {
		t.Errorf("Dockerfile:\n%s", files["Dockerfile"])
	}
	if !strings.Contains(files["compose.yaml"], "vm2image/web1:latest") || !strings.Contains(files["compose.yaml"], "80") {
		t.Errorf("compose.yaml:\n%s", files["compose.yaml"])
	}
	for n, b := range files {
		if strings.Contains(b, "hunter2") || strings.Contains(b, "name: vm2image-agent") || strings.Contains(b, "49153/tcp") {
			t.Errorf("%s holds the left-out variable or the agent as a service:\n%s", n, b)
		}
	}
}

// TestRuntimeKeepServiceEnv: with KeepServiceEnv the whole environment enters the image.
func TestRuntimeKeepServiceEnv(t *testing.T) {
	r := runtimeRun(t, true)
	must(t, r.runtime(context.Background()))
	if !r.report.ServiceEnvKept || len(r.report.ServiceEnvLeftOut) != 0 {
		t.Errorf("kept %v, left out %+v", r.report.ServiceEnvKept, r.report.ServiceEnvLeftOut)
	}
	if conf := runtimeFile(t, r.layers[0].Path, ".vm2image/services.yaml"); !strings.Contains(conf, "DB_PASSWORD=hunter2") {
		t.Errorf("services.yaml without the kept variable:\n%s", conf)
	}
}

// runtimeFile reads name from the layer tar at p.
func runtimeFile(t *testing.T, p, name string) string {
	t.Helper()
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s not in %s", name, p)
		}
		must(t, err)
		if h.Name == name {
			b, err := io.ReadAll(tr)
			must(t, err)
			return string(b)
		}
	}
}

// TestRuntimeLayerReproducible: two conversions of one VM at different times make the same
// runtime layer, byte for byte (a fleet's warm run then uploads no runtime layer again).
func TestRuntimeLayerReproducible(t *testing.T) {
	var blobs [][]byte
	for i, created := range []time.Time{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), time.Now().UTC().Truncate(time.Second)} {
		r := runtimeRun(t, false)
		r.opts.Created = created
		must(t, r.runtime(context.Background()))
		b, err := os.ReadFile(r.layers[len(r.layers)-1].Path)
		must(t, err)
		blobs = append(blobs, b)
		if i == 1 && !bytes.Equal(blobs[0], blobs[1]) {
			t.Fatalf("the runtime layers of two conversions of one VM differ (%d and %d bytes)", len(blobs[0]), len(blobs[1]))
		}
	}
}
