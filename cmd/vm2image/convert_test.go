package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/image"
)

// convertFixture converts the running fixture VM with the given flags and returns the report.
func convertFixture(t *testing.T, vm *testenv.VM, o convertOptions) *convert.Report {
	t.Helper()
	t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, string(vm.Token))
	o.tokenFile = tok
	if o.base == "" {
		o.base = "docker-daemon:" + testenv.EngineBase(t)
	}
	for def, v := range map[*string]string{&o.format: "docker-archive", &o.builder: "chroot", &o.strategy: "checksum", &o.transfer: "diff", &o.compression: "gzip"} {
		if *def == "" {
			*def = v
		}
	}
	o.report = filepath.Join(t.TempDir(), "report.json")
	o.cacheDir = convertCacheDir()
	var out, errOut bytes.Buffer
	if err := runConvert(context.Background(), o, vm.Addr, &out, &errOut); err != nil {
		t.Fatalf("convert: %v\n%s", err, errOut.String())
	}
	t.Logf("convert:\n%s", out.String())
	b, err := os.ReadFile(o.report)
	if err != nil {
		t.Fatal(err)
	}
	var rep convert.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// convertCacheDir is the cache root the conversion tests share (outside the repo): its layers,
// roots and apt-archives are those of the other tests.
func convertCacheDir() string { return testenv.CacheDir() }

// snapshotForCompare records what the conversion promises to keep of every path: type, mode,
// owner, size, contents and link target (mtimes are not promised: checksum ignores them).
func snapshotForCompare(t *testing.T, dir string, treatAsMounts bool) map[string]string {
	t.Helper()
	excl := append(append([]string(nil), image.DefaultExcludes...), "/.vm2image", "/.dockerenv",
		"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab")
	out := map[string]string{}
	err := fswalk.Walk(context.Background(), dir, fswalk.Options{Digest: true, Excludes: excl, TreatAsMounts: treatAsMounts},
		func(e *fsmeta.Entry) error {
			if e.Path == "." {
				return nil
			}
			top, _, _ := strings.Cut(e.Path, "/")
			switch top {
			case "dev", "proc", "sys", "run":
				if e.Path == top {
					out[e.Path] = "mount point"
				}
				return nil
			}
			out[e.Path] = fmt.Sprintf("%s %04o %d:%d size=%d %s ->%q", e.Type, e.Mode, e.UID, e.GID, e.Size, e.Digest, e.Target)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// exportImage creates (does not start) a container of image and returns its exported tree.
func exportImage(t *testing.T, image string) string {
	t.Helper()
	id := strings.TrimSpace(run(t, "docker", "create", image))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	dir := t.TempDir()
	sh := fmt.Sprintf("docker export %s | tar -C %s --numeric-owner -xpf -", id, dir)
	run(t, "sh", "-c", sh)
	return dir
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	var lastErr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := c.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

// TestConvertEndToEnd converts the running fixture VM, loads the image into the engine, checks
// that the image's tree equals the VM's (outside the documented excludes), then runs it and
// checks that both services answer with the VM's bytes and that the container stops cleanly.
func TestConvertEndToEnd(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	vm := testenv.StartWebVM(t)
	out := filepath.Join(t.TempDir(), "vm.tar")
	tag := fmt.Sprintf("vm2image-test/converted:%d", os.Getpid())
	rep := convertFixture(t, vm, convertOptions{output: out, tag: tag})
	want := snapshotForCompare(t, vm.Root, true)
	run(t, "docker", "load", "-i", out)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	if d := cmp.Diff(want, snapshotForCompare(t, exportImage(t, tag), false)); d != "" {
		t.Errorf("the image's tree differs from the VM's (-vm +image):\n%s", d)
	}
	for _, f := range []string{"Dockerfile", "services.yaml", "compose.yaml"} {
		if _, err := os.Stat(filepath.Join(out+".context", f)); err != nil {
			t.Errorf("context file %s: %v", f, err)
		}
	}
	checkReport(t, rep)

	vmNginx := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", vm.Ports["nginx"]))
	vmApp := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", vm.Ports["app"]))
	id := strings.TrimSpace(run(t, "docker", "run", "-d", tag))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	ip := strings.TrimSpace(run(t, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", id))
	if got := httpGet(t, fmt.Sprintf("http://%s:%d/", ip, vm.Ports["nginx"])); got != vmNginx {
		t.Errorf("nginx in the container answers %q, in the VM %q", got, vmNginx)
	}
	// The app listens on the VM's loopback only: ask from inside the container.
	got := run(t, "docker", "exec", id, "busybox", "wget", "-qO-", fmt.Sprintf("http://127.0.0.1:%d/", vm.Ports["app"]))
	if got != vmApp {
		t.Errorf("the app in the container answers %q, in the VM %q", got, vmApp)
	}
	start := time.Now()
	run(t, "docker", "stop", id)
	if code := strings.TrimSpace(run(t, "docker", "inspect", "-f", "{{.State.ExitCode}}", id)); code != "0" || time.Since(start) > 8*time.Second {
		t.Errorf("docker stop: exit code %s after %s (signals should reach the services)", code, time.Since(start))
	}
}

func checkReport(t *testing.T, r *convert.Report) {
	t.Helper()
	if r.OriginalBytes == 0 || r.Base.Digest == "" || len(r.Phases) != 7 || r.Image.Digest == "" {
		t.Errorf("report lacks figures: %+v", r)
	}
	if len(r.Services) != 2 {
		t.Errorf("services %v, want nginx and the app", r.Services)
	}
	var sum int64
	for _, l := range r.Image.Layers {
		sum += l.Compressed
	}
	if sum >= r.Image.Bytes || r.Image.Bytes-sum > 1<<20 {
		t.Errorf("image bytes %d do not add up with its layers' %d", r.Image.Bytes, sum)
	}
}
