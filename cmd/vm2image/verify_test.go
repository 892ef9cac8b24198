package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/verify"
)

// verifyEnv is a converted fixture VM: the running VM, its conversion as a docker-archive and
// as an OCI layout tagged "good", and the tag of the image loaded in the engine.
type verifyEnv struct {
	vm      *testenv.VM
	archive string
	layout  string
	tag     string
	token   string
}

func newVerifyEnv(t *testing.T) *verifyEnv {
	t.Helper()
	testenv.Short(t)
	testenv.RequireDocker(t)
	e := &verifyEnv{vm: testenv.StartWebVM(t), archive: filepath.Join(t.TempDir(), "vm.tar")}
	e.tag = fmt.Sprintf("vm2image-test/verify:%d", os.Getpid())
	convertFixture(t, e.vm, convertOptions{output: e.archive, tag: e.tag})
	e.token = filepath.Join(t.TempDir(), "token")
	writeFile(t, e.token, string(e.vm.Token))
	e.layout = filepath.Join(t.TempDir(), "layout")
	img := resolveImage(t, "docker-archive:"+e.archive)
	must(t, image.WriteOCILayout(context.Background(), e.layout, img, "good"))
	return e
}

func resolveImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	b, err := image.Resolve(context.Background(), ref, image.ResolveOptions{CacheDir: filepath.Join(convertCacheDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	return b.Image
}

// verifyCLI runs verify as the command does and returns the JSON report and the exit code.
func (e *verifyEnv) verifyCLI(t *testing.T, ref string, o verifyOptions) (*verify.Report, int, error) {
	t.Helper()
	o.tokenFile, o.json, o.cacheDir = e.token, true, convertCacheDir()
	var out bytes.Buffer
	start := time.Now()
	err := runVerify(context.Background(), o, ref, e.vm.Addr, &out)
	code := exitCodeOf(err)
	t.Logf("verify %s: exit %d in %s", ref, code, time.Since(start).Round(time.Millisecond))
	if code == 2 {
		return nil, code, err
	}
	var rep verify.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("reading the JSON report: %v\n%s", jerr, out.String())
	}
	return &rep, code, err
}

// errText prints err, also an exitError without an error (the code says it all).
func errText(err error) string {
	var ee *exitError
	if errors.As(err, &ee) && ee.err == nil {
		return fmt.Sprintf("exit code %d", ee.code)
	}
	return fmt.Sprint(err)
}

func exitCodeOf(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return -1
}

// addFault appends an image made of the good one plus layer to the layout, tagged name.
func (e *verifyEnv) addFault(t *testing.T, name string, layer v1.Layer) string {
	t.Helper()
	img, err := mutate.AppendLayers(resolveImage(t, "oci:"+e.layout+":good"), layer)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(e.layout)
	if err != nil {
		t.Fatal(err)
	}
	must(t, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})))
	return "oci:" + e.layout + ":" + name
}

// layerEntry is one entry of a test layer.
type layerEntry struct {
	hdr  tar.Header
	body []byte
}

// fromVM returns the entry of rel as the VM holds it (no xattrs), with body when given.
func (e *verifyEnv) fromVM(t *testing.T, rel string, body []byte) layerEntry {
	t.Helper()
	p := filepath.Join(e.vm.Root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	h := tar.Header{Name: rel, Mode: int64(st.Mode & 07777), Uid: int(st.Uid), Gid: int(st.Gid), ModTime: fi.ModTime(), Format: tar.FormatPAX}
	switch {
	case fi.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, rel+"/"
	case fi.Mode()&os.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		h.Linkname, _ = os.Readlink(p)
	default:
		h.Typeflag = tar.TypeReg
		if body == nil {
			if body, err = os.ReadFile(p); err != nil {
				t.Fatal(err)
			}
		}
		h.Size = int64(len(body))
	}
	return layerEntry{hdr: h, body: body}
}

func testLayer(t *testing.T, entries ...layerEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range entries {
		must(t, tw.WriteHeader(&en.hdr))
		if _, err := tw.Write(en.body); err != nil {
			t.Fatal(err)
		}
	}
	must(t, tw.Close())
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func whiteout(rel string) layerEntry {
	dir, base := filepath.Split(rel)
	return layerEntry{hdr: tar.Header{Name: dir + ".wh." + base, Typeflag: tar.TypeReg, Format: tar.FormatPAX}}
}

type kindPath struct {
	kind verify.Kind
	path string
}

func kindPaths(r *verify.Report) []kindPath {
	var out []kindPath
	for _, d := range r.Differences {
		out = append(out, kindPath{d.Kind, d.Path})
	}
	return out
}

// TestVerify converts the running fixture VM, verifies the conversion (equal), then images with
// one seeded fault each, built as an extra layer on the good image: each is caught and named,
// and nothing else is reported.
func TestVerify(t *testing.T) {
	e := newVerifyEnv(t)
	t.Run("equal", func(t *testing.T) {
		for _, ref := range []string{e.archive, "oci:" + e.layout + ":good"} {
			rep, code, err := e.verifyCLI(t, ref, verifyOptions{})
			if code != 0 || !rep.Equal {
				t.Fatalf("a faithful conversion (%s) verifies with exit %d (%s): %+v", ref, code, errText(err), rep.Differences)
			}
			if rep.VMEntries < 5000 || rep.ImageEntries < rep.VMEntries || rep.Packages.VM < 100 || rep.Packages.VM != rep.Packages.Image {
				t.Errorf("report lacks figures: %d VM entries, %d image entries, packages %+v", rep.VMEntries, rep.ImageEntries, rep.Packages)
			}
		}
	})
	for _, tc := range e.faults(t) {
		t.Run(tc.name, func(t *testing.T) {
			ref := e.addFault(t, tc.name, testLayer(t, tc.layer...))
			rep, code, err := e.verifyCLI(t, ref, verifyOptions{})
			if code != 1 || rep.Equal {
				t.Fatalf("%s: exit %d (%s), want 1 (different)", tc.name, code, errText(err))
			}
			got := kindPaths(rep)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: differences %v, want %v\n%+v", tc.name, got, tc.want, rep.Differences)
			}
		})
	}
}

type faultCase struct {
	name  string
	layer []layerEntry
	want  []kindPath
}

func (e *verifyEnv) faults(t *testing.T) []faultCase {
	issue := e.fromVM(t, "etc/issue", nil)
	issue.body = bytes.Clone(issue.body)
	issue.body[0] ^= 0x20 // one byte changed, same size
	motd := e.fromVM(t, "etc/motd", nil)
	motd.hdr.Mode ^= 0o044
	version := e.fromVM(t, "etc/debian_version", nil)
	version.hdr.Uid, version.hdr.Gid = 5, 5
	added := layerEntry{hdr: tar.Header{Name: "srv/added.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}, body: []byte("new")}
	localtime := e.fromVM(t, "etc/localtime", nil)
	localtime.hdr.Linkname = "/usr/share/zoneinfo/Europe/Paris"
	status, arch := e.statusWithout(t, "busybox")
	return []faultCase{
		{"content", []layerEntry{issue}, []kindPath{{verify.KindContent, "etc/issue"}}},
		{"mode", []layerEntry{motd}, []kindPath{{verify.KindMode, "etc/motd"}}},
		{"owner", []layerEntry{version}, []kindPath{{verify.KindOwner, "etc/debian_version"}}},
		{"removed", []layerEntry{whiteout("etc/issue.net")}, []kindPath{{verify.KindMissing, "etc/issue.net"}}},
		{"added", []layerEntry{added}, []kindPath{{verify.KindExtra, "srv/added.txt"}}},
		{"symlink", []layerEntry{localtime}, []kindPath{{verify.KindTarget, "etc/localtime"}}},
		// fromVM leaves the capability out: the same file without its security.capability.
		{"xattr", []layerEntry{e.fromVM(t, "opt/tools/captool", nil)}, []kindPath{{verify.KindXattr, "opt/tools/captool"}}},
		// opt/tools/two as a file of its own, same contents and metadata: the link is split.
		{"hardlink", []layerEntry{e.fromVM(t, "opt/tools/two", nil)}, []kindPath{{verify.KindHardlink, "opt/tools/two"}}},
		{"package", []layerEntry{e.fromVM(t, "var/lib/dpkg/status", status)},
			[]kindPath{{verify.KindSize, "var/lib/dpkg/status"}, {verify.KindPackageMissing, "busybox:" + arch}}},
		{"opaque", []layerEntry{e.fromVM(t, "srv/app", nil), {hdr: tar.Header{Name: "srv/app/.wh..wh..opq", Typeflag: tar.TypeReg}}},
			[]kindPath{{verify.KindMissing, "srv/app/public"}}},
	}
}

// statusWithout returns the VM's dpkg status without pkg's paragraph, and pkg's architecture.
func (e *verifyEnv) statusWithout(t *testing.T, pkg string) ([]byte, string) {
	b, err := os.ReadFile(filepath.Join(e.vm.Root, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	arch := ""
	for _, para := range strings.Split(string(b), "\n\n") {
		if strings.HasPrefix(para, "Package: "+pkg+"\n") {
			for _, l := range strings.Split(para, "\n") {
				if a, ok := strings.CutPrefix(l, "Architecture: "); ok {
					arch = a
				}
			}
			continue
		}
		keep = append(keep, para)
	}
	if arch == "" {
		t.Fatalf("no %s in the VM's dpkg status", pkg)
	}
	return []byte(strings.Join(keep, "\n\n")), arch
}

// TestVerifyRun runs the good image (every port of the VM accepts connections, GET / answers
// the VM's bytes; once reaching the loopback port through docker exec) and one whose nginx
// cannot start.
func TestVerifyRun(t *testing.T) {
	e := newVerifyEnv(t)
	run(t, "docker", "load", "-i", e.archive)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", e.tag).Run() })
	for _, execProbe := range []bool{false, true} {
		ref := "docker-daemon:" + e.tag
		if execProbe {
			ref = e.tag // a plain reference the engine holds
		}
		// GET / on the VM adds to nginx's log: the next verification must not count that.
		// The engine's image is read streaming from docker save: packages and all.
		o := verifyOptions{run: true, runExec: execProbe, excludes: []string{"/var/log/nginx/*"}}
		rep, code, err := e.verifyCLI(t, ref, o)
		if code != 0 || rep.Run == nil {
			t.Fatalf("--run (exec %v) on the good image: exit %d (%s): %+v", execProbe, code, errText(err), rep)
		}
		if len(rep.Run.Ports) != 2 {
			t.Fatalf("--run checked ports %+v, want nginx's and the app's", rep.Run.Ports)
		}
		for _, p := range rep.Run.Ports {
			if !p.Accepts || p.HTTP != "same" {
				t.Errorf("port %+v: want accepted and the same answer to GET /", p)
			}
		}
	}
	script := layerEntry{hdr: tar.Header{Name: "usr/sbin/nginx", Typeflag: tar.TypeReg, Mode: 0o755, Size: 18}, body: []byte("#!/bin/sh\nexit 1\n\n")}
	ref := e.addFault(t, "broken-nginx", testLayer(t, script))
	o := verifyOptions{run: true, runTimeout: 15 * time.Second, noPackages: true, excludes: []string{"/var/log/nginx/*"}}
	rep, code, err := e.verifyCLI(t, ref, o)
	if code != 1 || rep.Run == nil {
		t.Fatalf("--run on an image whose nginx cannot start: exit %d (%s)", code, errText(err))
	}
	nginx := verify.Difference{}
	for _, d := range rep.Differences {
		if d.Kind == verify.KindPort && d.Path == "tcp/"+strconv.Itoa(e.vm.Ports["nginx"]) {
			nginx = d
		}
	}
	if nginx.Kind == "" {
		t.Errorf("nginx's port not reported: %+v", rep.Differences)
	}
	t.Logf("nginx: %+v; notes: %q", nginx, rep.Run.Notes)
	// A source without processes (dir:) names no port: --run still starts the image and checks
	// that it stays up. The good image does; one whose entrypoint exits at once does not.
	stopped := func(ref string) bool {
		t.Helper()
		o := verifyOptions{run: true, json: true, noPackages: true, cacheDir: convertCacheDir(), runStayUp: 3 * time.Second}
		var out bytes.Buffer
		err := runVerify(context.Background(), o, ref, "dir:"+e.vm.Root, &out)
		var rep verify.Report
		if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil || rep.Run == nil {
			t.Fatalf("verify --run %s dir:: %v / %v\n%s", ref, err, jerr, out.String())
		}
		for _, d := range rep.Differences {
			if d.Kind == verify.KindStopped {
				t.Logf("%s: %+v", ref, d)
				return true
			}
		}
		return false
	}
	if stopped("oci:" + e.layout + ":good") {
		t.Error("--run from a dir: source: the good image reported as stopped")
	}
	dead := layerEntry{hdr: tar.Header{Name: ".vm2image/init", Typeflag: tar.TypeReg, Mode: 0o755, Size: 18}, body: []byte("#!/bin/sh\nexit 3\n\n")}
	if !stopped(e.addFault(t, "dead-init", testLayer(t, dead))) {
		t.Error("--run from a dir: source: an image whose entrypoint exits at once passed")
	}
	if out := run(t, "docker", "images", "-q", "vm2image-verify/run"); strings.TrimSpace(out) != "" {
		t.Errorf("temporary tags left in the engine: %s", out)
	}
}

// TestVerifyBadInput: a corrupt or truncated archive, a layer blob that does not match its
// digest, an unreachable agent: a clear error, exit code 2.
func TestVerifyBadInput(t *testing.T) {
	e := newVerifyEnv(t)
	dir := t.TempDir()
	whole, err := os.ReadFile(e.archive)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.tar")
	must(t, os.WriteFile(truncated, whole[:len(whole)/2], 0o644))
	corrupt := filepath.Join(dir, "corrupt.tar")
	must(t, os.WriteFile(corrupt, bytes.Repeat([]byte("not a tar "), 1000), 0o644))
	tampered := e.tamperedLayout(t, dir)
	for _, tc := range []struct{ name, ref, spec, want string }{
		{"truncated archive", truncated, e.vm.Addr, "reading archive manifest"},
		{"corrupt archive", corrupt, e.vm.Addr, "reading archive manifest"},
		{"layer digest mismatch", "oci:" + tampered + ":good", e.vm.Addr, "digest mismatch"},
		{"agent unreachable", e.archive, "127.0.0.1:1", "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := verifyOptions{cacheDir: filepath.Join(dir, "cache")}
			o.tokenFile = e.token
			var out bytes.Buffer
			err := runVerify(context.Background(), o, tc.ref, tc.spec, &out)
			if code := exitCodeOf(err); code != 2 || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("exit %d, error %v; want 2 and an error mentioning %q", code, err, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
}

// tamperedLayout copies the layout with the good image and recompresses its last layer's blob in
// place: same contents, another digest than the manifest's.
func (e *verifyEnv) tamperedLayout(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(dir, "tampered")
	run(t, "cp", "-a", e.layout, dst)
	ls, err := resolveImage(t, "oci:"+dst+":good").Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[len(ls)-1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dst, "blobs", d.Algorithm, d.Hex)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var re bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&re, gzip.BestSpeed)
	zw.Write(raw)
	must(t, zw.Close())
	if bytes.Equal(re.Bytes(), b) {
		t.Fatal("recompression gave the same blob")
	}
	must(t, os.WriteFile(blob, re.Bytes(), 0o644))
	return dst
}

// TestVerifyBenchmark (VM2IMAGE_BENCH=1) measures `vm2image verify` on the converted fixture
// image, its peak resident memory and time from each kind of input, against flattening the same
// image with the Docker engine (docker create, docker export | tar -x) and hashing every file
// with sha256sum, in the same run.
func TestVerifyBenchmark(t *testing.T) {
	if os.Getenv("VM2IMAGE_BENCH") != "1" {
		t.Skip("benchmark: set VM2IMAGE_BENCH=1")
	}
	e := newVerifyEnv(t)
	bin := filepath.Join(t.TempDir(), "vm2image")
	run(t, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	run(t, "docker", "load", "-i", e.archive)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", e.tag).Run() })
	cache := filepath.Join(t.TempDir(), "cache")
	timings := map[string][]time.Duration{}
	var maxRSS int64
	verifyCmd := func(name, ref string) {
		// Peak RSS through GNU time: the rusage of a child of this (large) test process would
		// count the memory it shared with it before exec.
		rssFile := filepath.Join(t.TempDir(), "rss")
		start := time.Now()
		cmd := exec.Command("/usr/bin/time", "-f", "%M", "-o", rssFile, bin, "verify", ref, e.vm.Addr, "--token-file", e.token, "--cache-dir", cache)
		out, err := cmd.CombinedOutput()
		el := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		timings[name] = append(timings[name], el)
		b, err := os.ReadFile(rssFile)
		if err != nil {
			t.Fatal(err)
		}
		kib, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		maxRSS = max(maxRSS, kib<<10)
		t.Logf("%s: %s, peak RSS %.1f MiB", name, el.Round(time.Millisecond), float64(kib)/1024)
	}
	const baseline = "baseline: docker create + export | tar -x + find -exec sha256sum"
	for round := 0; round < 5; round++ {
		if round == 0 {
			verifyCmd("verify docker-archive (cold layer cache)", e.archive)
		} else {
			verifyCmd("verify docker-archive", e.archive)
		}
		verifyCmd("verify oci layout", "oci:"+e.layout+":good")
		verifyCmd("verify docker-daemon", "docker-daemon:"+e.tag)
		dir := t.TempDir()
		start := time.Now()
		id := strings.TrimSpace(run(t, "docker", "create", e.tag))
		run(t, "sh", "-c", fmt.Sprintf("docker export %s | tar -C %s --numeric-owner -xpf - && find %s -type f -exec sha256sum {} + >/dev/null", id, dir, dir))
		timings[baseline] = append(timings[baseline], time.Since(start))
		run(t, "docker", "rm", id)
	}
	var names []string
	for n := range timings {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ds := timings[n]
		slices.Sort(ds)
		t.Logf("%-60s median %6.2fs (runs %v)", n, ds[len(ds)/2].Seconds(), ds)
	}
	t.Logf("peak RSS of vm2image verify: %.1f MiB", float64(maxRSS)/(1<<20))
	if maxRSS > 256<<20 {
		t.Errorf("peak RSS %d bytes, over 256 MiB", maxRSS)
	}
}
