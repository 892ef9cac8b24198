package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// TestSystemdVM converts a real Debian 12 booted with systemd under QEMU (nginx, sshd, a Python
// app as its own user with a RuntimeDirectory=, PostgreSQL with rows; the agent a systemd
// service): the services are described by their units, sshd is skipped, the container serves
// nginx and the app with the VM's bytes, PostgreSQL answers with the VM's rows, and verify
// --run finds the image equal.
func TestSystemdVM(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	disk, kernel, initrd := testenv.SystemdVMDisk(t, testenv.AgentBinary(t))
	vm := testenv.BootSystemdVM(t, disk, kernel, initrd, 80, 8000, 5432)
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, testenv.SystemdVMToken)
	waitAgent(t, vm.AgentAddr, []byte(testenv.SystemdVMToken), 6*time.Minute)
	waitListening(t, vm.AgentAddr, []byte(testenv.SystemdVMToken), []int{80, 8000, 5432}, 5*time.Minute)
	vmNginx := httpGet(t, "http://127.0.0.1:80/")
	vmApp := httpGet(t, "http://127.0.0.1:8000/")

	t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
	tag := fmt.Sprintf("vm2image-test/systemd-vm:%d", os.Getpid())
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	var o convertOptions
	o.tokenFile, o.load, o.tag = tok, true, tag
	o.format, o.builder, o.strategy, o.transfer, o.compression, o.base = "docker-archive", "chroot", "checksum", "diff", "gzip", "docker-daemon:"+testenv.EngineBase(t)
	o.output = filepath.Join(t.TempDir(), "vm.tar")
	var stdout, stderr bytes.Buffer
	if err := runConvert(t.Context(), o, vm.AgentAddr, &stdout, &stderr); err != nil {
		t.Fatalf("convert: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	t.Logf("convert:\n%s", stdout.String())
	f, err := os.Open(o.output + ".context/services.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := services.ReadServicesYAML(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkSystemdServices(t, cfg)

	id := strings.TrimSpace(run(t, "docker", "run", "-d", tag))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	ip := strings.TrimSpace(run(t, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", id))
	if got := httpGet(t, "http://"+ip+":80/"); got != vmNginx {
		t.Errorf("nginx in the container answers %q, in the VM %q", got, vmNginx)
	}
	if got := httpGet(t, "http://"+ip+":8000/"); got != vmApp {
		t.Errorf("the app in the container answers %q, in the VM %q", got, vmApp)
	}
	rows := waitPsql(t, id)
	if want := strings.Join(testenv.SystemdVMRows, "\n") + "\n"; rows != want {
		t.Errorf("PostgreSQL in the container answers %q, want the VM's rows %q", rows, want)
	}
	if out := run(t, "docker", "exec", id, "stat", "-c", "%a %U", "/run/app"); out != "750 app\n" {
		t.Errorf("/run/app in the container: %q, want 750 app (RuntimeDirectory=)", out)
	}
	var vout bytes.Buffer
	vo := verifyOptions{run: true, runTimeout: 90 * time.Second, maxDiffs: 50}
	vo.tokenFile = tok
	if err := runVerify(t.Context(), vo, "docker-daemon:"+tag, vm.AgentAddr, &vout); err != nil {
		t.Errorf("verify --run did not find the image equal:\n%s", vout.String())
	}
}

func checkSystemdServices(t *testing.T, cfg services.Config) {
	t.Helper()
	bySource := map[string]string{}
	for _, s := range cfg.Services {
		bySource[s.Name] = s.Source + " " + s.Unit
	}
	for _, want := range []string{"nginx", "app"} {
		if !strings.HasPrefix(bySource[want], services.SourceUnit) {
			t.Errorf("service %s: %q, want described by its unit (services %v)", want, bySource[want], bySource)
		}
	}
	if !slices.ContainsFunc(cfg.Skipped, func(s services.Skipped) bool { return strings.HasPrefix(s.Unit, "ssh") || s.Name == "sshd" }) {
		t.Errorf("sshd not skipped: skipped %+v", cfg.Skipped)
	}
	for _, s := range cfg.Services {
		if s.Name == "sshd" || strings.HasPrefix(s.Unit, "vm2image-agent") {
			t.Errorf("service %s should not run in the container", s.Name)
		}
	}
}

// waitAgent retries until the agent answers info: the VM boots under TCG meanwhile.
func waitAgent(t *testing.T, addr string, token []byte, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		src, err := source.Open(ctx, addr, sourceToken(token))
		if err == nil {
			_, err = src.Info(ctx)
			src.Close()
			if err == nil {
				return
			}
		}
		last = err
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("the VM's agent did not answer within %s: %v", timeout, errors.Join(last, ctx.Err()))
}

// waitListening waits until the VM's processes listen on every port: the agent may answer
// before the slower services (PostgreSQL under TCG) are up.
func waitListening(t *testing.T, addr string, token []byte, ports []int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	missing := ports
	for time.Now().Before(deadline) {
		src, err := source.Open(t.Context(), addr, sourceToken(token))
		if err == nil {
			ps, perr := src.Processes(t.Context(), wire.ProcessArgs{ListeningOnly: true})
			src.Close()
			if perr == nil {
				missing = slices.DeleteFunc(slices.Clone(ports), func(port int) bool {
					return slices.ContainsFunc(ps, func(p procs.Process) bool { return listensOn(p, port) })
				})
				if len(missing) == 0 {
					return
				}
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("the VM does not listen on %v within %s", missing, timeout)
}

// waitPsql asks PostgreSQL in the container for the rows until it answers.
func waitPsql(t *testing.T, id string) string {
	t.Helper()
	var out []byte
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		out, err = exec.Command("docker", "exec", "-u", "postgres", id, "psql", "-tA", "-c", "SELECT name FROM items ORDER BY id").CombinedOutput()
		if err == nil {
			return string(out)
		}
	}
	t.Fatalf("psql in the container: %v\n%s", err, out)
	return ""
}

func listensOn(p procs.Process, port int) bool {
	return slices.ContainsFunc(p.Listening, func(s procs.Socket) bool { return s.Port == port })
}
