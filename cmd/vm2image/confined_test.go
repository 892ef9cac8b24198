package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
)

// These tests attack the real binaries (vm2image and vm2image-agent) with hostile VM roots:
// symlinks to host files, devices, huge files, and signals during a tar: source.

// binRun is one finished run of a binary.
type binRun struct {
	stdout, stderr string
	err            error
	maxRSS         int64 // bytes, from wait4's rusage
}

// runBin runs bin under GNU time, which reports the peak RSS of bin alone: a child of this
// test process would inherit the test's own high-water mark through fork and exec.
func runBin(t *testing.T, env []string, bin string, args ...string) binRun {
	t.Helper()
	testenv.RequireCommands(t, "time")
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.Command("time", append([]string{"-f", "%M", "-o", rssFile, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return binRun{stdout: out.String(), stderr: errOut.String(), err: err, maxRSS: readRSS(t, rssFile)}
}

// readRSS reads GNU time's %M (KiB) from the last line of its output file.
func readRSS(t *testing.T, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		t.Fatalf("no peak RSS in %s", file)
	}
	kib, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatalf("peak RSS in %s: %v", file, err)
	}
	return kib << 10
}

func newMarker(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "HOSTLEAK" + hex.EncodeToString(b)
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustLink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

const osRelease = "ID=debian\nVERSION_ID=12\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian 12\"\n"

// dpkgRecord is one installed package in dpkg status format.
func dpkgRecord(name string) string {
	return "Package: " + name + "\nStatus: install ok installed\nVersion: 1.0\nArchitecture: all\nDescription: " + name + "\n\n"
}

// tarOf archives root with GNU tar (symlinks, devices and owners as they are).
func tarOf(t *testing.T, root string) string {
	t.Helper()
	out := root + ".tar"
	if b, err := exec.Command("tar", "-C", root, "--numeric-owner", "-cf", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, b)
	}
	return out
}

// agentFor starts the real agent serving root (under GNU time) and returns its source spec, the
// token file and a function that stops it and returns its peak RSS.
func agentFor(t *testing.T, root string) (spec, tokenFile string, stop func() (rss int64)) {
	t.Helper()
	testenv.RequireCommands(t, "time")
	tokenFile = filepath.Join(t.TempDir(), "token")
	tok := make([]byte, 32)
	rand.Read(tok)
	mustWrite(t, tokenFile, hex.EncodeToString(tok)+"\n")
	rssFile := filepath.Join(t.TempDir(), "rss")
	cmd := exec.Command("time", "-f", "%M", "-o", rssFile, testenv.AgentBinary(t), "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--root", root, "--quiet")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	m := regexp.MustCompile(`^vm2image-agent listening on (127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("agent's first line %q", line)
	}
	go io.Copy(io.Discard, stdout)
	stop = func() int64 {
		// The agent is time's only child; time itself lets SIGTERM kill it, so signal the agent.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if err != nil || len(strings.Fields(string(b))) != 1 {
			t.Fatalf("finding the agent under time: %q %v", b, err)
		}
		pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
		syscall.Kill(pid, syscall.SIGTERM)
		cmd.Wait()
		return readRSS(t, rssFile)
	}
	return m[1], tokenFile, stop
}

// hostileRoots builds VM roots whose hostname and package databases are symlinks to host files
// holding marker, one root per database kind, and a control root whose absolute links stay in it.
func hostileRoots(t *testing.T, marker string) (roots map[string]string, control string) {
	base := t.TempDir()
	secret := filepath.Join(base, "host", "secret")
	mustWrite(t, secret, marker+"\n")
	hostStatus := filepath.Join(base, "host", "status")
	mustWrite(t, hostStatus, dpkgRecord(strings.ToLower(marker))+"Description: "+marker+"\n")
	hostPacman := filepath.Join(base, "host", "pacman")
	mustWrite(t, filepath.Join(hostPacman, "p-1-1", "desc"), "%NAME%\n"+strings.ToLower(marker)+"\n\n%VERSION%\n1-1\n")
	dbs := map[string][2]string{
		"dpkg":   {"var/lib/dpkg/status", hostStatus},
		"apk":    {"lib/apk/db/installed", secret},
		"rpm":    {"var/lib/rpm/rpmdb.sqlite", secret},
		"pacman": {"var/lib/pacman/local", hostPacman},
	}
	roots = map[string]string{}
	for kind, db := range dbs {
		root := filepath.Join(base, kind)
		mustWrite(t, filepath.Join(root, "etc/os-release"), osRelease)
		mustLink(t, secret, filepath.Join(root, "etc/hostname"))
		mustLink(t, secret, filepath.Join(root, "etc/passwd"))
		mustLink(t, "../../../.."+secret, filepath.Join(root, "usr/lib/os-release"))
		mustLink(t, db[1], filepath.Join(root, db[0]))
		roots[kind] = root
	}
	control = filepath.Join(base, "control")
	mustWrite(t, filepath.Join(control, "usr/lib/os-release"), osRelease)
	mustLink(t, "/usr/lib/os-release", filepath.Join(control, "etc/os-release"))
	mustWrite(t, filepath.Join(control, "etc/realhostname"), "controlhost\n")
	mustLink(t, "/etc/realhostname", filepath.Join(control, "etc/hostname"))
	mustWrite(t, filepath.Join(control, "var/lib/dpkg/status.real"), dpkgRecord("controlpkg"))
	mustLink(t, "/var/lib/dpkg/status.real", filepath.Join(control, "var/lib/dpkg/status"))
	return roots, control
}

// TestAttackSymlinksToHostFiles: a VM whose /etc/hostname, os-release and package database
// are symlinks to host files. Through dir:, tar: and an agent serving --root, inspect shows
// nothing of the host files; absolute links inside the root still resolve (chroot semantics).
func TestAttackSymlinksToHostFiles(t *testing.T) {
	testenv.Short(t)
	bin := vm2imageBinary(t)
	marker := newMarker(t)
	roots, control := hostileRoots(t, marker)
	roots["control"] = control
	for kind, root := range roots {
		specs := map[string][]string{"dir": {"dir:" + root}, "tar": {"tar:" + tarOf(t, root)}}
		addr, tok, _ := agentFor(t, root)
		specs["agent"] = []string{addr, "--token-file", tok}
		for how, spec := range specs {
			r := runBin(t, nil, bin, append([]string{"inspect", "--json", "--work-dir", t.TempDir()}, spec...)...)
			if r.err != nil {
				t.Fatalf("%s via %s: inspect: %v\n%s", kind, how, r.err, r.stderr)
			}
			if strings.Contains(strings.ToLower(r.stdout+r.stderr), strings.ToLower(marker)) {
				t.Errorf("%s via %s: the host file leaked into inspect:\n%s%s", kind, how, r.stdout, r.stderr)
			}
			var rep InspectReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("%s via %s: %v", kind, how, err)
			}
			if kind == "control" {
				if rep.Info.Hostname != "controlhost" || rep.PackageCount != 1 || rep.Info.OS.VersionID != "12" {
					t.Errorf("control via %s: absolute links inside the root do not resolve: hostname %q, %d packages, os %+v (%s)",
						how, rep.Info.Hostname, rep.PackageCount, rep.Info.OS, rep.PackagesError)
				}
			} else if rep.PackageCount != 0 || rep.Info.Hostname != "" {
				t.Errorf("%s via %s: read %d packages, hostname %q through links to the host", kind, how, rep.PackageCount, rep.Info.Hostname)
			}
		}
	}
}

// TestAttackConvertLeaksNoHostFile converts the dpkg root of TestAttackSymlinksToHostFiles into
// an image: the marker is in no output, report, context file, label, tag or layer.
func TestAttackConvertLeaksNoHostFile(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	base := testenv.EngineBase(t)
	bin := vm2imageBinary(t)
	marker := newMarker(t)
	roots, _ := hostileRoots(t, marker)
	out := t.TempDir()
	for _, how := range []string{"dir", "tar"} {
		spec := "dir:" + roots["dpkg"]
		if how == "tar" {
			spec = "tar:" + tarOf(t, roots["dpkg"])
		}
		img := filepath.Join(out, how+".tar")
		r := runBin(t, []string{"VM2IMAGE_INIT=" + testenv.InitBinary(t)}, bin, "convert", spec, "-o", img, "--no-packages",
			"--base", "docker-daemon:"+base, "--report", filepath.Join(out, how+"-report.json"), "--work-dir", t.TempDir())
		if r.err != nil {
			t.Fatalf("convert %s: %v\n%s", how, r.err, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, marker) {
			t.Errorf("convert %s: marker in its output:\n%s%s", how, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "vm2image/vm:latest") {
			t.Errorf("convert %s: want the default tag without a hostname:\n%s", how, r.stdout)
		}
	}
	if where := findMarker(t, out, marker); where != "" {
		t.Errorf("the host file leaked into %s", where)
	}
}

// findMarker searches every file under dir, and inside tar archives their members, gunzipped.
func findMarker(t *testing.T, dir, marker string) string {
	t.Helper()
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || found != "" {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if inStream(f, marker, 0) {
			found = p
		}
		return nil
	})
	return found
}

// inStream reports whether r holds marker, looking into gzip streams and tar members.
func inStream(r io.Reader, marker string, depth int) bool {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(512)
	if depth < 4 && bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		if zr, err := gzip.NewReader(br); err == nil {
			return inStream(zr, marker, depth+1)
		}
	}
	if depth < 4 && len(head) == 512 && string(head[257:262]) == "ustar" {
		tr := tar.NewReader(br)
		for {
			h, err := tr.Next()
			if err != nil {
				return false
			}
			if strings.Contains(h.Name+h.Linkname, marker) || inStream(tr, marker, depth+1) {
				return true
			}
		}
	}
	b, _ := io.ReadAll(br)
	return bytes.Contains(b, []byte(marker))
}

// TestAttackHugeAndDeviceFiles: /etc/hostname a device (as /dev/zero) or a 2 GiB sparse file,
// and a dpkg status over its bound. inspect through dir:, tar: and the agent ends with a
// warning naming the file, the agent keeps serving, and no process grows past 512 MiB.
func TestAttackHugeAndDeviceFiles(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t) // device nodes
	bin := vm2imageBinary(t)
	base := t.TempDir()
	mk := func(name string, hostname func(root string), statusSize int64) string {
		root := filepath.Join(base, name)
		mustWrite(t, filepath.Join(root, "etc/os-release"), osRelease)
		hostname(root)
		st, err := os.Create(filepath.Join(root, "var/lib/dpkg/status"))
		if err != nil {
			os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
			st, err = os.Create(filepath.Join(root, "var/lib/dpkg/status"))
		}
		if err != nil {
			t.Fatal(err)
		}
		st.WriteString(dpkgRecord("x"))
		if err := st.Truncate(statusSize); err != nil {
			t.Fatal(err)
		}
		st.Close()
		return root
	}
	zero := func(root string) {
		os.MkdirAll(filepath.Join(root, "dev"), 0o755)
		if err := syscall.Mknod(filepath.Join(root, "dev/zero"), syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
			t.Fatal(err)
		}
		mustLink(t, "/dev/zero", filepath.Join(root, "etc/hostname"))
	}
	sparse := func(size int64) func(string) {
		return func(root string) {
			f, err := os.Create(filepath.Join(root, "etc/hostname"))
			if err != nil {
				t.Fatal(err)
			}
			f.Truncate(size)
			f.Close()
		}
	}
	cases := []struct {
		name, root string
		hostErr    string
		tar        bool
	}{
		{"devzero", mk("devzero", zero, 130<<20), "not a regular file", true},
		{"sparse2G", mk("sparse2G", sparse(2<<30), 2<<30), "file too large", false}, // a tar would hold 4 GiB of zeros
	}
	for _, c := range cases {
		addr, tok, stopAgent := agentFor(t, c.root)
		specs := map[string][]string{"dir": {"dir:" + c.root}, "agent": {addr, "--token-file", tok}, "agent-again": {addr, "--token-file", tok}}
		if c.tar {
			specs["tar"] = []string{"tar:" + tarOf(t, c.root)}
		}
		for _, how := range []string{"dir", "tar", "agent", "agent-again"} {
			spec, ok := specs[how]
			if !ok {
				continue
			}
			r := runBin(t, nil, bin, append([]string{"inspect", "--json", "--work-dir", t.TempDir()}, spec...)...)
			if r.err != nil {
				t.Fatalf("%s via %s: inspect: %v\n%s", c.name, how, r.err, r.stderr)
			}
			var rep InspectReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("%s via %s: %v", c.name, how, err)
			}
			probs, _ := json.Marshal(rep.Info.Problems)
			if !strings.Contains(string(probs), "/etc/hostname") || !strings.Contains(string(probs), c.hostErr) {
				t.Errorf("%s via %s: problems %s, want /etc/hostname: %s", c.name, how, probs, c.hostErr)
			}
			if !strings.Contains(rep.PackagesError, "/var/lib/dpkg/status") || !strings.Contains(rep.PackagesError, "file too large") {
				t.Errorf("%s via %s: packages error %q, want the status file named as too large", c.name, how, rep.PackagesError)
			}
			t.Logf("%s via %s: vm2image peak RSS %.1f MiB", c.name, how, float64(r.maxRSS)/(1<<20))
			if r.maxRSS > 512<<20 {
				t.Errorf("%s via %s: vm2image peak RSS %d bytes, over 512 MiB", c.name, how, r.maxRSS)
			}
		}
		rss := stopAgent()
		t.Logf("%s: agent peak RSS %.1f MiB", c.name, float64(rss)/(1<<20))
		if rss > 512<<20 {
			t.Errorf("%s: agent peak RSS %d bytes, over 512 MiB", c.name, rss)
		}
	}
}

// workDirs lists what vm2image left in the work directory work.
func workDirs(t *testing.T, work string) []string {
	t.Helper()
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// findTarDirs returns the tar: extraction directories anywhere under work.
func findTarDirs(work string) []string {
	var out []string
	filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "vm2image-tar-") {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// startBlockedTar starts vm2image with args and a tar: source read from a fifo that delivers the
// first entries then stalls: the run is caught mid-extraction, deterministically. It returns
// once the extraction directory (anywhere under work) holds the entries sent.
func startBlockedTar(t *testing.T, work string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vm2imageBinary(t), append(args, "--work-dir", work, "tar:"+fifo)...)
	cmd.Env = append(os.Environ(), "VM2IMAGE_INIT="+testenv.InitBinary(t))
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // read-write: does not wait for the reader
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); cmd.Process.Kill(); cmd.Wait() })
	tw := tar.NewWriter(w)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(osRelease))})
	tw.Write([]byte(osRelease))
	tw.Flush() // no end-of-archive: the next read blocks
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := findTarDirs(work); len(m) == 1 {
			if _, err := os.Stat(filepath.Join(m[0], "root/etc/os-release")); err == nil {
				return cmd, m[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no extraction directory appeared in %s: %v\n%s", work, workDirs(t, work), errOut.String())
		}
	}
}

// TestSignalsRemoveTarDir: SIGINT or SIGTERM during a tar: extraction, in inspect and in
// convert, removes the private (0700) directories before vm2image exits; the directory of a
// SIGKILLed run is removed by the next run.
func TestSignalsRemoveTarDir(t *testing.T) {
	testenv.Short(t)
	cmds := []struct {
		name string
		args []string
	}{
		{"inspect", []string{"inspect"}},
		{"convert", []string{"convert", "-o", filepath.Join(t.TempDir(), "img.tar"), "--no-packages"}},
	}
	for _, c := range cmds {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			work := t.TempDir()
			cmd, dir := startBlockedTar(t, work, c.args...)
			for d := dir; d != work; d = filepath.Dir(d) {
				if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("%s %v: work directory %s: %v %v, want mode 0700", c.name, sig, d, fi.Mode(), err)
				}
			}
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err == nil {
				t.Errorf("%s %v: succeeded on an interrupted archive", c.name, sig)
			}
			if left := workDirs(t, work); len(left) != 0 {
				t.Errorf("%s %v: left behind: %v", c.name, sig, left)
			}
		}
		work := t.TempDir()
		cmd, dir := startBlockedTar(t, work, c.args...)
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("%s: a killed run cannot clean up, yet %s is gone: %v", c.name, dir, err)
		}
		root := filepath.Join(t.TempDir(), "small")
		mustWrite(t, filepath.Join(root, "etc/os-release"), osRelease)
		// The next run sweeps before anything else: it need not succeed (no base image here).
		next := append([]string{}, c.args...)
		if c.name == "convert" {
			next = append(next, "--base", "docker-daemon:vm2image-test/none:none")
		}
		r := runBin(t, []string{"VM2IMAGE_INIT=" + testenv.InitBinary(t)}, vm2imageBinary(t), append(next, "--work-dir", work, "tar:"+tarOf(t, root))...)
		t.Logf("%s: next run: %v %s", c.name, r.err, r.stderr)
		if left := workDirs(t, work); len(left) != 0 {
			t.Errorf("%s: the killed run's directory survived the next run: %v", c.name, left)
		}
	}
}
