package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// TestConvertContextBuilds converts the fixture VM, then: the summary names the image ID that
// docker shows after loading and the manifest digest; `docker build FILE.context` with the
// real engine builds an image whose nginx answers as the VM's; a second conversion to the same
// -o is refused without --force and changes nothing; with --force it replaces the archive and
// vm2image's own context files, and the user's file in FILE.context/ survives.
func TestConvertContextBuilds(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	vm := testenv.StartWebVM(t)
	out := filepath.Join(t.TempDir(), "vm.tar")
	tag := fmt.Sprintf("vm2image-test/context:%d", os.Getpid())
	rep := convertFixture(t, vm, convertOptions{output: out, tag: tag, contextLayers: true})
	ctxDir := out + ".context"
	for _, f := range []string{"Dockerfile", "services.yaml", "compose.yaml", "vm2image-init", "1-packages.tar", "2-vm-diff.tar"} {
		if _, err := os.Stat(filepath.Join(ctxDir, f)); err != nil {
			t.Errorf("context file %s: %v", f, err)
		}
	}
	var summary bytes.Buffer
	printSummary(&summary, rep)
	t.Logf("summary:\n%s", summary.String())
	loaded := run(t, "docker", "load", "-i", out)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	id := strings.TrimSpace(run(t, "docker", "images", "--no-trunc", "-q", tag))
	if id != rep.Image.ID || !strings.Contains(summary.String(), "image ID:") || !strings.Contains(summary.String(), id) {
		t.Errorf("docker images shows %s (load: %s); report ID %s; summary:\n%s", id, loaded, rep.Image.ID, summary.String())
	}
	if !strings.Contains(summary.String(), "manifest digest:") || rep.Image.Digest == rep.Image.ID {
		t.Errorf("summary does not name the manifest digest apart from the ID")
	}
	if strings.Contains(summary.String(), "MB") {
		t.Errorf("summary mixes size formats (decimal MB):\n%s", summary.String())
	}

	// The context builds with the real engine, and the result serves the VM's page.
	rebuilt := tag + "-rebuilt"
	run(t, "docker", "build", "-q", "-t", rebuilt, ctxDir)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", rebuilt).Run() })
	vmNginx := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", vm.Ports["nginx"]))
	cid := strings.TrimSpace(run(t, "docker", "run", "-d", rebuilt))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", cid).Run() })
	ip := strings.TrimSpace(run(t, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid))
	if got := httpGet(t, fmt.Sprintf("http://%s:%d/", ip, vm.Ports["nginx"])); got != vmNginx {
		t.Errorf("nginx in the rebuilt image answers %q, in the VM %q", got, vmNginx)
	}
	if ls := run(t, "docker", "run", "--rm", "--entrypoint", "/bin/sh", rebuilt, "-c", "find / -xdev -name '.wh.*' | head -3"); strings.TrimSpace(ls) != "" {
		t.Errorf("whiteout files unpacked into the rebuilt image: %s", ls)
	}

	// Outputs are not replaced without --force; --force keeps what vm2image did not write.
	notes := filepath.Join(ctxDir, "NOTES.md")
	writeFile(t, notes, "my notes")
	before, err := os.Stat(out)
	must(t, err)
	o := convertOptions{output: out, tag: tag, contextLayers: true, base: "docker-daemon:" + testenv.EngineBase(t),
		format: "docker-archive", builder: "chroot", strategy: "checksum", transfer: "diff", compression: "gzip", cacheDir: convertCacheDir()}
	tok := filepath.Join(t.TempDir(), "token")
	writeFile(t, tok, string(vm.Token))
	o.tokenFile = tok
	var so, se bytes.Buffer
	err = runConvert(context.Background(), o, vm.Addr, &so, &se)
	if !errors.Is(err, convert.ErrOutputExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second conversion without --force: %v", err)
	}
	if after, _ := os.Stat(out); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the refused conversion touched %s", out)
	}
	o.force = true
	if err := runConvert(context.Background(), o, vm.Addr, &so, &se); err != nil {
		t.Fatalf("second conversion with --force: %v\n%s", err, se.String())
	}
	if b, err := os.ReadFile(notes); err != nil || string(b) != "my notes" {
		t.Errorf("the user's file in the context: %q, %v", b, err)
	}
	if after, _ := os.Stat(out); after.ModTime().Equal(before.ModTime()) {
		t.Errorf("--force did not replace %s", out)
	}
}
