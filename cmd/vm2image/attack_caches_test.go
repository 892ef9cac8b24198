package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vm2imageBinary builds the real vm2image command once per test process.
func vm2imageBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vm2image-cmd-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "vm2image")
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building vm2image: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

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
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Devmajor: e.maj, Devminor: e.min,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		must(t, tw.WriteHeader(h))
		_, err := tw.Write(e.body)
		must(t, err)
	}
	must(t, tw.Close())
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
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			must(t, cmd.Start())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// Feed the VM's tar up to its set-uid file, then hold the rest until nobody tried.
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			must(t, err)
			vm := append(hostileEntries(t, "usr/bin/vmroot"),
				tarEntry{name: "etc/os-release", typ: tar.TypeReg, mode: 0o644, body: []byte("ID=debian\nVERSION_ID=12\n")})
			var head, rest bytes.Buffer
			writeTar(t, &head, vm)
			raw := head.Bytes()
			cut := bytes.Index(raw, []byte("etc/os-release")) - 512 // the PAX header before it, roughly
			cut -= cut % 512
			_, err = w.Write(raw[:cut])
			must(t, err)
			found := waitForSetuid(t, work, "vmroot", done)
			t.Logf("the VM's set-uid file is unpacked at %s", found)
			attackPath(t, found)
			rest.Write(raw[cut:])
			_, err = w.Write(rest.Bytes())
			must(t, err)
			must(t, w.Close())
			if err := <-done; err != nil && cmdName == "convert" {
				t.Fatalf("vm2image %s: %v\n%s", cmdName, err, out.String())
			}
			t.Logf("vm2image %s:\n%s", cmdName, out.String())
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

var _ = json.Marshal
var _ = context.Background
var _ convert.Report
