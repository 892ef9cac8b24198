package disk

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Appliance streams the root filesystem of img, with the filesystems its /etc/fstab mounts
// in place, as a tar (numeric owners, xattrs) into w. Every filesystem is parsed by the kernel
// of libguestfs's appliance (a small VM), never by the host's; the drive is added read-only
// with its format given, so qemu neither probes nor writes it. One guestfish session does it
// all: inspect, mount read-only, tar-out.
func Appliance(ctx context.Context, img Image, opts Options, w io.Writer) error {
	opts.defaults()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	f, err := startFish(ctx, opts, pw)
	pw.Close()
	if err != nil {
		return err
	}
	defer f.stop()
	if _, err := f.do(fmt.Sprintf("add-drive %s readonly:true format:%s", quoteFish(img.Path), img.Format), "run"); err != nil {
		return fmt.Errorf("starting the libguestfs appliance: %w", err)
	}
	mounts, err := f.plan(opts.Root)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		opts.Logf("disk: mounting %s at %s (read-only, in the appliance)", m.Device, m.Point)
		if _, err := f.do(fmt.Sprintf("mount-ro %s %s", m.Device, m.Point)); err != nil {
			return fmt.Errorf("mounting %s at %s: %w", m.Device, m.Point, err)
		}
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, pr)
		if err != nil { // the reader gave up: end the session rather than block its writes
			syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		}
		copied <- err
	}()
	_, err = f.do("tar-out / /dev/fd/3 numericowner:true xattrs:true")
	f.exit()
	if cerr := <-copied; err == nil && cerr != nil {
		err = fmt.Errorf("copying the appliance's tar stream: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("reading the filesystems out of the appliance: %w", err)
	}
	return f.wait()
}

// plan finds the root (inspect-os) and the mounts of its /etc/fstab, root first.
func (f *fish) plan(want string) ([]Mount, error) {
	fsLines, err := f.do("list-filesystems")
	if err != nil {
		return nil, fmt.Errorf("listing filesystems: %w", err)
	}
	fss, order := map[string]string{}, []string(nil)
	for _, l := range fsLines {
		if dev, typ, ok := strings.Cut(l, ": "); ok && isSafeDevice(dev) {
			fss[dev] = typ
			order = append(order, dev)
		}
	}
	roots, err := f.do("inspect-os")
	if err != nil {
		return nil, fmt.Errorf("inspecting the disk: %w", err)
	}
	if len(roots) == 0 {
		order = f.unlisted(fss, order)
	}
	root, err := chooseRoot(roots, want, fss, order)
	if err != nil {
		return nil, err
	}
	mpLines, err := f.do("inspect-get-mountpoints " + root)
	if err != nil {
		return nil, fmt.Errorf("reading the mount points of %s: %w", root, err)
	}
	var mounts []Mount
	for _, l := range mpLines {
		mp, dev, ok := strings.Cut(l, ": ")
		if !ok || !isSafeMount(mp) || !isSafeDevice(dev) {
			f.logf("disk: fstab entry %q left out (unusual characters)", l)
			continue
		}
		if t := fss[dev]; t == "swap" || t == "crypto_LUKS" || t == "unknown" {
			f.logf("disk: %s (%s) at %s not read", dev, t, mp)
			continue
		}
		mounts = append(mounts, Mount{Point: mp, Device: dev})
	}
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(mounts[i].Point, "/") < strings.Count(mounts[j].Point, "/") || mounts[i].Point == "/"
	})
	if len(mounts) == 0 || mounts[0].Point != "/" {
		mounts = append([]Mount{{Point: "/", Device: root}}, mounts...)
	}
	return mounts, nil
}

// unlisted adds the partitions list-filesystems leaves out (LUKS volumes among them), with
// their type as vfs-type says ("-": a failure does not end the session).
func (f *fish) unlisted(fss map[string]string, order []string) []string {
	parts, err := f.do("list-partitions")
	if err != nil {
		return order
	}
	for _, p := range parts {
		if _, seen := fss[p]; seen || !isSafeDevice(p) {
			continue
		}
		typ, err := f.do("-vfs-type " + p)
		if err != nil {
			return order
		}
		fss[p] = "unknown"
		if len(typ) == 1 && typ[0] != "" {
			fss[p] = typ[0]
		}
		order = append(order, p)
	}
	sort.Strings(order)
	return order
}

// chooseRoot picks the root among those inspection found.
func chooseRoot(roots []string, want string, fss map[string]string, order []string) (string, error) {
	var ok []string
	for _, r := range roots {
		if isSafeDevice(r) {
			ok = append(ok, r)
		}
	}
	switch {
	case want != "":
		for _, r := range ok {
			if r == want {
				return r, nil
			}
		}
		return "", fmt.Errorf("%w: --disk-root %s is not one of the systems found (%s)", ErrNoOS, want, strings.Join(ok, ", "))
	case len(ok) == 1:
		return ok[0], nil
	case len(ok) > 1:
		return "", fmt.Errorf("%w: %s", ErrSeveralRoots, strings.Join(ok, ", "))
	}
	return "", noOS(fss, order)
}

// fish is one interactive guestfish session: commands on its stdin, answers on its stdout up to
// a marker line we echo after each batch.
type fish struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *syncBuffer
	n      int
	logf   func(string, ...any)
	done   bool
}

func startFish(ctx context.Context, opts Options, tarOut *os.File) (*fish, error) {
	cmd := exec.CommandContext(ctx, "guestfish", "--ro", "--no-progress-bars")
	cmd.Env = opts.Env
	cmd.ExtraFiles = []*os.File{tarOut} // fd 3 in guestfish: tar-out writes /dev/fd/3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	f := &fish{cmd: cmd, stderr: &syncBuffer{}, logf: opts.Logf}
	cmd.Stderr = f.stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting guestfish (Debian package libguestfs-tools): %w", err)
	}
	f.in, f.out = in, bufio.NewReader(out)
	return f, nil
}

// do runs commands and returns the lines they printed. guestfish reading a script ends at the
// first failing command: its exit is the error, with what it said on stderr.
func (f *fish) do(cmds ...string) ([]string, error) {
	f.n++
	marker := fmt.Sprintf("@@vm2image-done-%d@@", f.n)
	script := strings.Join(cmds, "\n") + "\necho " + marker + "\n"
	if _, err := io.WriteString(f.in, script); err != nil {
		return nil, f.failed(err)
	}
	var lines []string
	for {
		l, err := f.out.ReadString('\n')
		if err != nil {
			return nil, f.failed(err)
		}
		l = strings.TrimRight(l, "\n")
		if l == marker {
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// failed turns a broken session into an error carrying guestfish's last words.
func (f *fish) failed(err error) error {
	f.in.Close()
	werr := f.wait()
	msg := strings.TrimSpace(f.stderr.String())
	if len(msg) > 2000 {
		msg = msg[len(msg)-2000:]
	}
	if msg == "" {
		msg = fmt.Sprint(werr, " ", err)
	}
	return fmt.Errorf("guestfish: %s", msg)
}

func (f *fish) exit() {
	io.WriteString(f.in, "exit\n")
	f.in.Close()
}

func (f *fish) wait() error {
	if f.done {
		return nil
	}
	f.done = true
	if err := f.cmd.Wait(); err != nil {
		return fmt.Errorf("guestfish: %v: %s", err, strings.TrimSpace(f.stderr.String()))
	}
	return nil
}

// stop ends the session whatever its state: the appliance dies with guestfish's group.
func (f *fish) stop() {
	if f.done {
		return
	}
	f.in.Close()
	syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	f.wait()
}

// quoteFish quotes a host path for guestfish's command line.
func quoteFish(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
