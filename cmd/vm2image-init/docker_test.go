package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// TestInitInContainer is the real thing: the services selected from the running fixture VM,
// in an image built by the Docker engine from the Dockerfile the services package writes (the
// fixture's cached root imported as the base, the VM's changed nginx site as a layer ADDed on
// top, the init and services.yaml COPYed in). Both services answer with the VM's bytes, run
// under the init as PID 1 with their users, and `docker stop` ends the container at once with
// exit code 0. A command given to `docker run` replaces the services and sets the exit code.
func TestInitInContainer(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	vm := testenv.StartWebVM(t)
	cfg := selectFromVM(t, vm)
	image := buildImage(t, vm, cfg)

	nginxPort, appPort := vm.Ports["nginx"], vm.Ports["app"]
	name := fmt.Sprintf("vm2image-init-test-%d", os.Getpid())
	docker(t, "run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1::%d", nginxPort), image)
	t.Cleanup(func() {
		if logs, err := dockerErr("logs", name); err == nil {
			t.Logf("container log:\n%s", logs)
		}
		_, _ = dockerErr("rm", "-f", name)
	})
	hostPort := strings.TrimSpace(docker(t, "port", name, fmt.Sprintf("%d/tcp", nginxPort)))
	hostPort = hostPort[strings.LastIndex(hostPort, ":")+1:]

	want, _ := os.ReadFile(filepath.Join(vm.Root, "var/www/html/index.html"))
	if got := httpGet(t, "127.0.0.1:"+hostPort); got != string(want) {
		t.Errorf("nginx in the container answers %q, want the VM's %q", got, want)
	}
	want, _ = os.ReadFile(filepath.Join(vm.Root, "srv/app/public/index.html"))
	got := docker(t, "exec", name, "busybox", "wget", "-q", "-O", "-", fmt.Sprintf("http://127.0.0.1:%d/", appPort))
	if got != string(want) {
		t.Errorf("the app in the container answers %q, want the VM's %q", got, want)
	}
	checkProcessTree(t, name)

	start := time.Now()
	docker(t, "stop", "-t", "10", name)
	took := time.Since(start)
	code := strings.TrimSpace(docker(t, "inspect", "-f", "{{.State.ExitCode}}", name))
	if code != "0" || took > 5*time.Second {
		t.Errorf("docker stop took %s, exit code %s: want under 5s and 0", took, code)
	}
	logs := docker(t, "logs", name)
	if strings.Contains(logs, "live on") {
		t.Error("a service detached instead of staying in the foreground")
	}
	for _, w := range []string{"vm2image-init: starting nginx (pid", "vm2image-init: starting busybox-httpd (pid", "received SIGTERM"} {
		if !strings.Contains(logs, w) {
			t.Errorf("container log lacks %q", w)
		}
	}

	out, err := dockerErr("run", "--rm", image, "sh", "-c", "echo from a command; exit 3")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(out, "from a command") {
		t.Errorf("docker run IMAGE sh -c 'exit 3': %v, %q: want exit code 3", err, out)
	}
}

// buildImage builds the test image with the engine from the generated Dockerfile.
func buildImage(t *testing.T, vm *testenv.VM, cfg services.Config) string {
	t.Helper()
	base := importRoot(t, testenv.Root(t, testenv.WebVM))

	dir := t.TempDir()
	site := "etc/nginx/sites-available/default"
	writeLayer(t, filepath.Join(dir, "vm-diff.tar"), vm.Root, site)
	copyFile(t, mustInit(t), filepath.Join(dir, services.ContextInitName), 0o755)
	var conf bytes.Buffer
	if err := services.WriteServicesYAML(&conf, cfg); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, services.ContextConfigName), conf.Bytes())
	df := services.Dockerfile(base, []string{"/elsewhere/vm-diff.tar"}, cfg, services.ImageConfig{
		Env: []string{"PATH=" + services.DefaultPath}, Labels: map[string]string{"org.vm2image.test": t.Name()}})
	writeFile(t, filepath.Join(dir, "Dockerfile"), []byte(df))
	t.Logf("Dockerfile:\n%s", df)

	image := fmt.Sprintf("vm2image-test/init:%d", os.Getpid())
	docker(t, "build", "--force-rm", "-q", "-t", image, dir)
	t.Cleanup(func() { _, _ = dockerErr("rmi", "-f", image) })
	return image
}

// selectFromVM selects the VM's services from the agent's process list.
func selectFromVM(t *testing.T, vm *testenv.VM) services.Config {
	t.Helper()
	src, err := source.Open(context.Background(), vm.Addr, source.Options{Token: vm.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ps, err := src.Processes(context.Background(), wire.ProcessArgs{Env: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := services.Config{Services: services.Select(ps, services.SelectOptions{IncludeEnv: true}), StopTimeout: 5 * time.Second}
	if len(cfg.Services) != 2 {
		t.Fatalf("selected %+v, want nginx and busybox-httpd", cfg.Services)
	}
	return cfg
}

// importRoot imports a cached, read-only fixture root as a base image once per root.
func importRoot(t *testing.T, root string) string {
	t.Helper()
	ref := "vm2image-test/root:" + filepath.Base(root)
	if _, err := dockerErr("image", "inspect", ref); err == nil {
		return ref
	}
	tarCmd := exec.Command("tar", "-C", root, "--numeric-owner", "-c", ".")
	imp := exec.Command("docker", "import", "-", ref)
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	var stderr bytes.Buffer
	tarCmd.Stderr, imp.Stderr = &stderr, &stderr
	if err := tarCmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := imp.Run(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, stderr.String())
	}
	if err := tarCmd.Wait(); err != nil {
		t.Fatalf("tar: %v\n%s", err, stderr.String())
	}
	return ref
}

// writeLayer writes a tar of the named files of root.
func writeLayer(t *testing.T, path, root string, files ...string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: f, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

// checkProcessTree checks from the host that the init is the container's PID 1 and that the
// services run as its children with the VM's users.
func checkProcessTree(t *testing.T, name string) {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(docker(t, "inspect", "-f", "{{.State.Pid}}", name)))
	if err != nil {
		t.Fatal(err)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); !strings.HasSuffix(exe, "/.vm2image/init") {
		t.Errorf("the container's PID 1 runs %q, want the init", exe)
	}
	users := map[string]string{}
	for _, c := range children(pid) {
		st := stat(t, c.pid)
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.pid))
		if m := regexp.MustCompile(`(?m)^Uid:\t(\d+)`).FindSubmatch(status); m != nil {
			users[st.Comm] = string(m[1])
		}
	}
	if users["nginx"] != "0" || users["busybox"] != "1001" || len(users) != 2 {
		t.Errorf("the init's children (comm: uid) %v, want nginx: 0 and busybox: 1001", users)
	}
}

func httpGet(t *testing.T, addr string) string {
	t.Helper()
	// docker-proxy accepts connections before the service in the container listens: retry
	// until the service answers.
	var lastErr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			lastErr = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return string(b)
	}
	t.Fatalf("GET http://%s/: %v", addr, lastErr)
	return ""
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerErr(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func dockerErr(args ...string) (string, error) {
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0") // the engine's own builder: no buildx needed
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustInit(t *testing.T) string {
	t.Helper()
	bin, err := initBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
