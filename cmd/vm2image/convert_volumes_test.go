package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

// TestConvertVolumesAutoPostgres converts the PostgreSQL fixture VM (the systemd VM's root, its
// table of rows in /var/lib/postgresql) with --volumes auto: the image holds no PostgreSQL data,
// compose.yaml mounts the named volume, the archive beside -o loads into that volume with the
// documented one-shot container (owners and modes kept), and the image run with the volume
// (its init starting the cluster the VM's generator enabled) serves the VM's rows.
func TestConvertVolumesAutoPostgres(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	root := testenv.Root(t, testenv.SystemdVMRecipe)
	t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
	dir := t.TempDir()
	tag := "vm2image-test/pgvol:latest"
	o := convertOptions{output: filepath.Join(dir, "db.tar"), tag: tag, load: true, volumesMode: "auto", force: true,
		base: "docker-daemon:" + testenv.EngineBase(t), report: filepath.Join(dir, "report.json"), cacheDir: convertCacheDir(),
		format: "docker-archive", builder: "chroot", strategy: "checksum", transfer: "diff", compression: "gzip", contextLayers: true}
	o.quiet = true
	var out, errOut bytes.Buffer
	if err := runConvert(context.Background(), o, "dir:"+root, &out, &errOut); err != nil {
		t.Fatalf("convert: %v\n%s", err, errOut.String())
	}
	t.Logf("convert:\n%s", out.String())
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	var rep convert.Report
	b, _ := os.ReadFile(o.report)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Volumes) != 1 || rep.Volumes[0].Path != "/var/lib/postgresql" || rep.Fit == nil {
		t.Fatalf("volumes %+v, fit %v; want /var/lib/postgresql and a fit section", rep.Volumes, rep.Fit)
	}
	vol := rep.Volumes[0]
	if _, err := os.Stat(vol.Archive); err != nil || filepath.Dir(vol.Archive) != dir {
		t.Fatalf("volume archive %s beside -o: %v", vol.Archive, err)
	}
	if left := docker(t, "run", "--rm", "--entrypoint", "find", tag, "/var/lib/postgresql", "-mindepth", "1"); strings.TrimSpace(left) != "" {
		t.Errorf("the image holds PostgreSQL data:\n%s", left)
	}
	compose, err := os.ReadFile(filepath.Join(dir, "db.tar.context", "compose.yaml"))
	if err != nil || !strings.Contains(string(compose), "- "+vol.Name+":/var/lib/postgresql") || !strings.Contains(string(compose), "external: true") {
		t.Errorf("compose.yaml does not mount the volume %s: %v\n%s", vol.Name, err, compose)
	}
	// What compose would do with the external volume, after the documented load.
	name := "vm2image-test-" + vol.Name
	exec.Command("docker", "volume", "rm", "-f", name).Run()
	docker(t, "volume", "create", name)
	t.Cleanup(func() { exec.Command("docker", "volume", "rm", "-f", name).Run() })
	docker(t, "run", "--rm", "-v", name+":/volume", "-v", dir+":/from:ro", "--entrypoint", "tar", tag,
		"--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", "/from/"+filepath.Base(vol.Archive), "-C", "/volume")
	if got := docker(t, "run", "--rm", "-v", name+":/var/lib/postgresql", "--entrypoint", "stat", tag, "-c", "%U:%G %a", "/var/lib/postgresql/15/main"); strings.TrimSpace(got) != "postgres:postgres 700" {
		t.Errorf("data directory owner and mode in the volume %q, want postgres:postgres 700", got)
	}
	// The image's own init starts the cluster: postgresql@15-main, which the VM's generator
	// enables at boot, is among the services the conversion found.
	if !slices.ContainsFunc(rep.ServiceSources, func(s convert.ServiceSource) bool { return s.Unit == "postgresql@15-main.service" }) {
		t.Fatalf("services %+v: postgresql@15-main.service missing", rep.ServiceSources)
	}
	id := strings.TrimSpace(docker(t, "run", "-d", "-v", name+":/var/lib/postgresql", tag))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	if rows := strings.Fields(waitPsql(t, id)); strings.Join(rows, " ") != strings.Join(testenv.SystemdVMRows, " ") {
		t.Errorf("rows %v, want the VM's %v", rows, testenv.SystemdVMRows)
	}
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// TestAttackVolumeSymlink: a VM whose data directory is a symlink (to /etc, or to a host path
// the attacker hopes the converter follows) asked for as a volume. The real binary refuses
// with an error naming the link, and leaves nothing at -o or beside it.
func TestAttackVolumeSymlink(t *testing.T) {
	testenv.RequireDocker(t)
	root := testenv.Overlay(t, testenv.Root(t, testenv.WebVM))
	os.MkdirAll(filepath.Join(root, "var/lib"), 0o755)
	if err := os.Symlink("/etc", filepath.Join(root, "var/lib/postgresql")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(vm2imageBinary(t), "convert", "dir:"+root, "--no-packages", "--base", "docker-daemon:"+testenv.EngineBase(t),
		"-o", filepath.Join(dir, "img.tar"), "--volume", "/var/lib/postgresql", "--cache-dir", convertCacheDir(), "-q")
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "/var/lib/postgresql is a symlink to /etc") {
		t.Errorf("convert of a symlinked volume: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestVolumeFlagsChecked: volume flags are checked before the source is opened.
func TestVolumeFlagsChecked(t *testing.T) {
	bin := vm2imageBinary(t)
	for _, args := range [][]string{
		{"--volume", "/proc/1", "-o", "x.tar"}, {"--volume", "relative/dir", "-o", "x.tar"}, {"--volume", "/", "-o", "x.tar"},
		{"--volumes", "all", "-o", "x.tar"}, {"--volumes", "auto", "--load"},
	} {
		cmd := exec.Command(bin, append([]string{"convert", "dir:/nonexistent"}, args...)...)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "volume") {
			t.Errorf("convert %v: %v, want a usage error about the volume\n%s", args, err, out)
		}
	}
}
