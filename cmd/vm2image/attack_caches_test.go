package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/proto"
)

// vm2imageBinary builds the real vm2image command for the test (the build cache makes the
// second build of a run a link).
// openDir makes a directory that every user may traverse (0755), as /var/tmp or /srv are: the
// protection under it must come from vm2image's own directories.
func openDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vm2image-open-")
	must(t, err)
	must(t, os.Chmod(d, 0o755))
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	body     []byte
	maj, min int64
}

func writeTar(t *testing.T, w io.Writer, es []tarEntry) {
	t.Helper()
	tw := tar.NewWriter(w)
	addEntries(t, tw, es)
	must(t, tw.Close())
}

func addEntries(t *testing.T, tw *tar.Writer, es []tarEntry) {
	t.Helper()
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Devmajor: e.maj, Devminor: e.min,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		must(t, tw.WriteHeader(h))
		_, err := tw.Write(e.body)
		must(t, err)
	}
}

// hostileEntries is a root holding a set-uid-root copy of id(1) at bin and a world-writable
// device node for the host's memory.
func hostileEntries(t *testing.T, bin string) []tarEntry {
	id, err := os.ReadFile("/usr/bin/id")
	must(t, err)
	return []tarEntry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: bin, typ: tar.TypeReg, mode: 0o4755, body: id},
		{name: "dev/", typ: tar.TypeDir, mode: 0o755},
		{name: "dev/mem0", typ: tar.TypeChar, mode: 0o666, maj: 1, min: 1},
	}
}

// hostileBase writes a docker-archive of a one-layer image made of hostileEntries.
func hostileBase(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	writeTar(t, &b, hostileEntries(t, "usr/bin/rootid"))
	raw := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, l)
	must(t, err)
	ref, err := name.ParseReference("hostile/base:1")
	must(t, err)
	p := filepath.Join(t.TempDir(), "hostile.tar")
	must(t, tarball.WriteToFile(p, ref, img))
	return p
}

// asNobody runs argv as nobody (uid and gid 65534, no groups), from a shell that nobody runs:
// setpriv itself would exec argv with capabilities it still holds, which no attacker has.
func asNobody(argv ...string) (string, error) {
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--",
		"/bin/sh", "-c", `exec "$@"`, "sh"}, argv...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// attackPath has nobody try to run the set-uid binary at p, read it and list its directory:
// every attempt must be refused with EACCES.
func attackPath(t *testing.T, p string) {
	t.Helper()
	for _, argv := range [][]string{{p}, {"/bin/cat", p}, {"/bin/ls", filepath.Dir(p)}} {
		out, err := asNobody(argv...)
		if err == nil || strings.Contains(out, "euid=0") || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody ran %q: %v\n%s\nwant Permission denied", argv, err, out)
		}
	}
}

// setuidFiles lists the set-uid files under dir (walked as root).
func setuidFiles(dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Mode()&os.ModeSetuid != 0 {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestAttackSetuidInCachesUnreachable: a hostile base image holds a set-uid-root id(1) and a
// world-writable memory device; a hostile tar: VM holds another set-uid-root id(1). Converted
// with the real vm2image (the base unpacked into the roots cache, the VM unpacked in the work
// directory), neither is reachable by an unprivileged user: not in the cache root (created
// 0755 by an older version: tightened), not in the tar: extraction directory while the
// conversion runs, nor in `inspect`'s. As a control, the same binary at an open path gives
// nobody euid 0.
func TestAttackSetuidInCachesUnreachable(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "setpriv", "cp")
	bin := vm2imageBinary(t)
	base := hostileBase(t)

	// Control: the set-uid binary works for nobody where the path is open.
	ctl := filepath.Join(openDir(t), "rootid")
	must(t, exec.Command("cp", "/usr/bin/id", ctl).Run())
	must(t, os.Chmod(ctl, 0o755|os.ModeSetuid))
	if out, err := asNobody(ctl); err != nil || !strings.Contains(out, "euid=0") {
		t.Fatalf("control: nobody ran a set-uid id at an open path: %v %q; want euid=0 (is the filesystem nosuid?)", err, out)
	}

	open := openDir(t)
	cacheRoot := filepath.Join(open, "cache")
	must(t, os.MkdirAll(filepath.Join(cacheRoot, "roots"), 0o755)) // as an older version left it
	must(t, os.Chmod(cacheRoot, 0o755))
	must(t, os.Chmod(filepath.Join(cacheRoot, "roots"), 0o755))
	work := filepath.Join(open, "work")
	must(t, os.Mkdir(work, 0o755))

	for _, cmdName := range []string{"convert", "inspect"} {
		t.Run(cmdName, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "vm.tar")
			must(t, syscall.Mkfifo(fifo, 0o600))
			args := []string{cmdName, "tar:" + fifo, "--work-dir", work}
			if cmdName == "convert" {
				args = append(args, "--base", "docker-archive:"+base, "--cache-dir", cacheRoot, "-o", filepath.Join(t.TempDir(), "img.tar"),
					"--report", filepath.Join(t.TempDir(), "r.json"))
			}
			out, err := attackWhileUnpacking(t, bin, args, fifo, work)
			if err != nil && cmdName == "convert" {
				t.Fatalf("vm2image %s: %v\n%s", cmdName, err, out)
			}
			t.Logf("vm2image %s:\n%s", cmdName, out)
			if cmdName == "convert" && !strings.Contains(out, "note: cache directory "+cacheRoot+" had mode 0755: now 0700") {
				t.Errorf("no note that the 0755 cache root was made private")
			}
		})
	}
	// The base's set-uid file is in the roots cache; every set-uid file under the cache root
	// is out of nobody's reach, and so is the device node.
	found := setuidFiles(cacheRoot)
	if len(found) == 0 {
		t.Fatalf("no set-uid file under %s: the base was not unpacked there", cacheRoot)
	}
	for _, p := range found {
		attackPath(t, p)
	}
	devs, _ := filepath.Glob(filepath.Join(cacheRoot, "roots", "*", "dev", "mem0"))
	if len(devs) == 0 {
		t.Errorf("the base's device node is not in the roots cache")
	}
	for _, d := range devs {
		if out, err := asNobody("/bin/dd", "if="+d, "of=/dev/null", "bs=1", "count=1"); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("nobody opened the device %s: %v %s", d, err, out)
		}
	}
	for _, p := range []string{cacheRoot, filepath.Join(cacheRoot, "roots"), filepath.Join(cacheRoot, "images")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", p, fi.Mode().Perm(), err)
		}
	}
}

// attackWhileUnpacking runs vm2image with args on a tar: source read from fifo, feeds it a VM
// tar up to and with a set-uid file, has nobody attack that file once it is unpacked under work,
// then feeds the rest and returns the command's output and error.
func attackWhileUnpacking(t *testing.T, bin string, args []string, fifo, work string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	must(t, err)
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	addEntries(t, tw, hostileEntries(t, "usr/bin/vmroot"))
	must(t, tw.Flush())
	cut := raw.Len()
	addEntries(t, tw, []tarEntry{{name: "etc/os-release", typ: tar.TypeReg, mode: 0o644, body: []byte("ID=debian\nVERSION_ID=12\n")}})
	must(t, tw.Close())
	_, err = w.Write(raw.Bytes()[:cut])
	must(t, err)
	found := waitForSetuid(t, work, "vmroot", done)
	t.Logf("the VM's set-uid file is unpacked at %s", found)
	attackPath(t, found)
	_, err = w.Write(raw.Bytes()[cut:])
	must(t, err)
	must(t, w.Close())
	err = <-done
	return out.String(), err
}

// waitForSetuid waits until a set-uid file named base appears under dir (the conversion
// unpacked it), or the command ends.
func waitForSetuid(t *testing.T, dir, base string, done chan error) string {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		for _, p := range setuidFiles(dir) {
			if filepath.Base(p) == base {
				return p
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("vm2image ended (%v) before the VM's set-uid file appeared under %s", err, dir)
		case <-deadline:
			t.Fatalf("no set-uid %s under %s", base, dir)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// secretVM boots the WebVM fixture with secrets: its busybox httpd service runs with
// DB_PASSWORD and API_KEY in its environment (values made at boot, in no file of the VM), and
// its files hold a PEM private key, an OpenSSH private key and a shadow file with a real hash.
func secretVM(t *testing.T) *testenv.VM {
	t.Helper()
	root := testenv.Overlay(t, testenv.Root(t, testenv.WebVM))
	bb := filepath.Join(root, "usr/bin/busybox")
	must(t, os.Rename(bb, bb+".real"))
	writeFile(t, bb, "#!/bin/sh\nexport DB_PASSWORD=\"pw-$(cat /proc/sys/kernel/random/uuid)\" API_KEY=\"key-$(cat /proc/sys/kernel/random/uuid)\"\n"+
		"exec /usr/bin/busybox.real \"$@\"\n")
	must(t, os.Chmod(bb, 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "etc/ssl/private"), 0o700))
	writeFile(t, filepath.Join(root, "etc/ssl/private/site.key"), "-----BEGIN PRIVATE KEY-----\n"+keyMaterial+"\n-----END PRIVATE KEY-----\n")
	must(t, os.MkdirAll(filepath.Join(root, "root/.ssh"), 0o700))
	writeFile(t, filepath.Join(root, "root/.ssh/id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\n"+keyMaterial+"\n-----END OPENSSH PRIVATE KEY-----\n")
	shadow, err := os.ReadFile(filepath.Join(root, "etc/shadow"))
	must(t, err)
	lines := strings.SplitN(string(shadow), "\n", 2)
	f := strings.Split(lines[0], ":")
	f[1] = "$6$" + hashMaterial
	writeFile(t, filepath.Join(root, "etc/shadow"), strings.Join(f, ":")+"\n"+lines[1])
	// A random token: one built from the PID was under the agent's 128 bits when the PID had 4 digits.
	tok, err := proto.NewToken()
	must(t, err)
	vm, err := testenv.BootWebVM(root, testenv.AgentBinary(t), tok, "127.0.0.1:0", io.Discard)
	if vm != nil {
		t.Cleanup(vm.Stop)
	}
	must(t, err)
	return vm
}

const (
	keyMaterial  = "MC4CAQAwBQYDK2VwBCIEIKeyMaterialThatMustNeverLeaveTheImage"
	hashMaterial = "saltsalt$HashMaterialThatMustNeverBePrinted0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH"
)

type convertRun struct {
	out, report, stdout, stderr string
	rep                         convert.Report
}

// convertVM converts vm with the real vm2image and the given extra flags.
func convertVM(t *testing.T, bin string, vm *testenv.VM, extra ...string) convertRun {
	t.Helper()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	writeFile(t, tok, string(vm.Token))
	r := convertRun{out: filepath.Join(dir, "img.tar"), report: filepath.Join(dir, "report.json")}
	args := append([]string{"convert", vm.Addr, "--token-file", tok, "--base", "docker-daemon:" + testenv.EngineBase(t), "--no-packages",
		"-o", r.out, "--report", r.report, "--cache-dir", convertCacheDir()}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("vm2image %q: %v\n%s%s", args, err, so.String(), se.String())
	}
	r.stdout, r.stderr = so.String(), se.String()
	b, err := os.ReadFile(r.report)
	must(t, err)
	must(t, json.Unmarshal(b, &r.rep))
	return r
}

// imageFiles returns what a push publishes and a user reads: every layer (uncompressed), the
// image config, services.yaml from the image, and the build context beside the archive.
func imageFiles(t *testing.T, archive string) map[string][]byte {
	t.Helper()
	img, err := tarball.ImageFromPath(archive, nil)
	must(t, err)
	files := map[string][]byte{}
	cfg, err := img.RawConfigFile()
	must(t, err)
	files["config"] = cfg
	layers, err := img.Layers()
	must(t, err)
	for i, l := range layers {
		rc, err := l.Uncompressed()
		must(t, err)
		b, err := io.ReadAll(rc)
		rc.Close()
		must(t, err)
		files[fmt.Sprintf("layer %d", i)] = b
		tr := tar.NewReader(bytes.NewReader(b))
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			if strings.TrimPrefix(h.Name, "./") == ".vm2image/services.yaml" {
				files["image services.yaml"], _ = io.ReadAll(tr)
			}
		}
	}
	for _, n := range []string{"Dockerfile", "services.yaml", "compose.yaml"} {
		b, err := os.ReadFile(filepath.Join(archive+".context", n))
		must(t, err)
		files["context "+n] = b
	}
	return files
}

// TestAttackSecretsInImage: a VM whose service holds DB_PASSWORD and API_KEY in its environment
// is converted by the real vm2image: by default neither the values (anywhere in the image or
// beside it) nor the names (in services.yaml, the Dockerfile, compose.yaml, the config) are
// there; the report and a warning name them without values; --keep-service-env keeps them.
// The VM's private keys and password hash are listed by path and kind, never by content.
func TestAttackSecretsInImage(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	vm := secretVM(t)
	bin := vm2imageBinary(t)
	def := convertVM(t, bin, vm)
	kept := convertVM(t, bin, vm, "--keep-service-env")

	// The values, as the VM's service held them: from the run that keeps them.
	keptYAML := string(imageFiles(t, kept.out)["image services.yaml"])
	var values []string
	for _, name := range []string{"DB_PASSWORD", "API_KEY"} {
		i := strings.Index(keptYAML, name+"=")
		if i < 0 {
			t.Fatalf("--keep-service-env: %s not in the image's services.yaml:\n%s", name, keptYAML)
		}
		v, _, _ := strings.Cut(keptYAML[i+len(name)+1:], "\n")
		values = append(values, strings.Trim(v, `"' `))
	}
	t.Logf("the service's secrets: %q", values)

	for what, b := range imageFiles(t, def.out) {
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				t.Errorf("%s of the default image holds the secret value %q", what, v)
			}
		}
		if what == "config" || strings.Contains(what, "services.yaml") || strings.Contains(what, "Dockerfile") || strings.Contains(what, "compose") {
			for _, n := range []string{"DB_PASSWORD", "API_KEY"} {
				if bytes.Contains(b, []byte(n)) {
					t.Errorf("%s of the default image names %s", what, n)
				}
			}
		}
	}
	var left []string
	for _, e := range def.rep.ServiceEnvLeftOut {
		left = append(left, e.Names...)
	}
	if !strings.Contains(strings.Join(left, " "), "API_KEY") || !strings.Contains(strings.Join(left, " "), "DB_PASSWORD") {
		t.Errorf("the report's left-out names are %q, want DB_PASSWORD and API_KEY", left)
	}
	if !strings.Contains(def.stderr, "service environment variables left out") || !strings.Contains(def.stderr, "--keep-service-env") {
		t.Errorf("no warning about the left-out variables:\n%s", def.stderr)
	}
	if len(kept.rep.ServiceEnvLeftOut) != 0 || !kept.rep.ServiceEnvKept || def.rep.ServiceEnvKept || strings.Contains(kept.stderr, "left out of the image") {
		t.Errorf("--keep-service-env still left out %+v", kept.rep.ServiceEnvLeftOut)
	}

	// Secret files: paths and kinds in the report and a warning, never contents.
	want := map[string]string{"/etc/ssl/private/site.key": convert.SecretPrivateKey, "/root/.ssh/id_ed25519": convert.SecretOpenSSHPrivateKey,
		"/etc/shadow": convert.SecretPasswordHashes}
	for _, f := range def.rep.SecretFiles {
		if want[f.Path] == f.Kind {
			delete(want, f.Path)
		}
	}
	if len(want) > 0 {
		t.Errorf("the report does not list %v; it lists %+v", want, def.rep.SecretFiles)
	}
	if !strings.Contains(def.stderr, "files with private keys or password hashes") {
		t.Errorf("no warning about secret files:\n%s", def.stderr)
	}
	report, _ := os.ReadFile(def.report)
	for _, out := range []string{def.stdout, def.stderr, string(report)} {
		for _, secret := range append([]string{keyMaterial, "HashMaterial"}, values...) {
			if strings.Contains(out, secret) {
				t.Errorf("the output or report shows secret material %q", secret)
			}
		}
	}
	t.Logf("warnings:\n%s", def.stderr)
}
