package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/fixture"
)

// SystemdVMToken is the agent token baked into the systemd VM's disk.
const SystemdVMToken = "vm2image-systemd-vm-test-token-0123456789abcdef"

// SystemdVMRows are the rows of the VM's PostgreSQL table "items" (name), in id order.
var SystemdVMRows = []string{"alpha", "bravo", "charlie"}

// SystemdVMRecipe is a Debian 12 that boots with systemd under QEMU: a kernel and initrd,
// systemd-networkd with DHCP on the user-mode network, nginx, sshd, a Python app as its own user
// with a RuntimeDirectory=, PostgreSQL with a table of rows, and the agent as a systemd service
// (its binary is written into each disk copy; the token is baked in).
var SystemdVMRecipe = Recipe{
	Suite: "bookworm",
	Packages: []string{"systemd-sysv", "udev", "linux-image-amd64", "initramfs-tools", "nginx-light",
		"openssh-server", "python3", "postgresql", "postgresql-client", "iproute2", "procps"},
	Script: `
echo systemd-vm > /etc/hostname
printf '/dev/vda / ext4 defaults 0 1\n' > /etc/fstab
mkdir -p /etc/systemd/network /etc/vm2image /opt/app/www
printf '[Match]\nName=en* eth*\n[Network]\nDHCP=yes\n' > /etc/systemd/network/10-wired.network
ln -sf /lib/systemd/system/systemd-networkd.service /etc/systemd/system/multi-user.target.wants/systemd-networkd.service
printf '%s' '` + SystemdVMToken + `' > /etc/vm2image/token
chmod 600 /etc/vm2image/token
printf 'from the VM nginx\n' > /var/www/html/index.html
useradd --system --home /opt/app --shell /usr/sbin/nologin app
printf 'from the VM app\n' > /opt/app/www/index.html
cat > /opt/app/app.py <<'PY'
import functools, http.server, os
with open("/run/app/app.pid", "w") as f:
    f.write(str(os.getpid()))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/opt/app/www")
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), handler).serve_forever()
PY
cat > /etc/systemd/system/app.service <<'UNIT'
[Unit]
Description=the Python app
After=network.target
[Service]
User=app
Group=app
RuntimeDirectory=app
RuntimeDirectoryMode=0750
Environment=PORT=8000
ExecStart=/usr/bin/python3 /opt/app/app.py
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/app.service /etc/systemd/system/multi-user.target.wants/app.service
cat > /etc/systemd/system/vm2image-agent.service <<'UNIT'
[Unit]
Description=vm2image agent
After=network-online.target
[Service]
ExecStart=/usr/local/bin/vm2image-agent --listen 0.0.0.0:49153 --token-file /etc/vm2image/token
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/vm2image-agent.service /etc/systemd/system/multi-user.target.wants/vm2image-agent.service
sed -i "s/^#listen_addresses.*/listen_addresses = '*'/" /etc/postgresql/15/main/postgresql.conf
echo 'host all all 0.0.0.0/0 trust' >> /etc/postgresql/15/main/pg_hba.conf
printf 'CREATE TABLE items (id serial primary key, name text);\nINSERT INTO items (name) VALUES (%s);\n' "'alpha'),('bravo'),('charlie'" |
  su postgres -s /bin/sh -c '/usr/lib/postgresql/15/bin/postgres --single -D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf postgres' >/dev/null
passwd -d root
`,
}

// SystemdVM is a booted QEMU VM.
type SystemdVM struct {
	AgentAddr string         // 127.0.0.1:PORT forwarded to the agent
	Ports     map[int]string // guest port -> forwarded host address
	Console   string         // the serial console log
	cmd       *exec.Cmd
	done      chan struct{}
}

// Stop powers the VM off.
func (vm *SystemdVM) Stop() {
	_ = vm.cmd.Process.Kill()
	<-vm.done
}

// SystemdVMDisk returns a private copy of the cached disk of SystemdVMRecipe with agentBin
// written to /usr/local/bin/vm2image-agent, and the kernel and initrd to boot it with. The
// cached disk is built once per recipe (mkfs.ext4 -d, no mount) under a lock.
func SystemdVMDisk(t testing.TB, agentBin string) (disk, kernel, initrd string) {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "debootstrap", "mkfs.ext4", "debugfs", "qemu-system-x86_64")
	root := Root(t, SystemdVMRecipe)
	cached, err := fixture.CachedFile(SystemdVMRecipe.Key()+".disk", "disk.img", t.Logf, func(path string) error {
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", root, path, "4G").CombinedOutput(); err != nil {
			return fmt.Errorf("mkfs.ext4 -d: %w\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("building the VM disk: %v", err)
	}
	kernels, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(root, "boot/initrd.img-*"))
	if len(kernels) == 0 || len(initrds) == 0 {
		t.Fatalf("no kernel or initrd in %s/boot", root)
	}
	disk = filepath.Join(t.TempDir(), "disk.img")
	if out, err := exec.Command("cp", "--sparse=always", cached, disk).CombinedOutput(); err != nil {
		t.Fatalf("copying the disk: %v\n%s", err, out)
	}
	// A journal on disk changes every second of the VM's life: verify could never find it
	// equal to the image converted a minute before. The VM keeps its journal in /run.
	volatile := filepath.Join(t.TempDir(), "volatile.conf")
	if err := os.WriteFile(volatile, []byte("[Journal]\nStorage=volatile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Likewise a database that checkpoints, vacuums and flushes on its own rewrites its files
	// after the conversion: verify (rightly) reports them. The VM's PostgreSQL is kept quiet:
	// no timed checkpoints, no autovacuum, no background writes; nothing queries it.
	quiet := filepath.Join(t.TempDir(), "quiet.conf")
	if err := os.WriteFile(quiet, []byte("autovacuum = off\ncheckpoint_timeout = '1d'\nmax_wal_size = '1GB'\nbgwriter_lru_maxpages = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "cd /usr/local/bin\nwrite " + agentBin + " vm2image-agent\nsif /usr/local/bin/vm2image-agent mode 0100755\n" +
		"mkdir /etc/systemd/journald.conf.d\ncd /etc/systemd/journald.conf.d\nwrite " + volatile + " volatile.conf\n" +
		"mkdir /etc/postgresql/15/main/conf.d\ncd /etc/postgresql/15/main/conf.d\nwrite " + quiet + " vm2image-quiet.conf\n"
	cmd := exec.Command("debugfs", "-w", "-f", "-", disk)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writing the agent into the disk: %v\n%s", err, out)
	}
	return disk, kernels[0], initrds[0]
}

// BootSystemdVM boots the disk under QEMU (TCG, one CPU, serial console to a file, user-mode
// network forwarding the agent's port to a free port of 127.0.0.1 and each of guestPorts to the
// same port of 127.0.0.1, so that what a check asks at HOST:PORT of the VM reaches it). A
// forward accepts connections before the guest listens: callers retry their first request.
func BootSystemdVM(t testing.TB, disk, kernel, initrd string, guestPorts ...int) *SystemdVM {
	t.Helper()
	vm := &SystemdVM{Ports: map[int]string{}, Console: filepath.Join(t.TempDir(), "console.log"), done: make(chan struct{})}
	fwd := ""
	for i, gp := range append([]int{49153}, guestPorts...) {
		hp, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			hp = gp
			if !portFree(hp) {
				Skip(t, fmt.Sprintf("port %d of 127.0.0.1 is taken: the VM's port %d is forwarded there", hp, gp))
			}
		}
		addr := "127.0.0.1:" + strconv.Itoa(hp)
		vm.Ports[gp] = addr
		fwd += fmt.Sprintf(",hostfwd=tcp:%s-:%d", addr, gp)
	}
	vm.AgentAddr = vm.Ports[49153]
	vm.cmd = exec.Command("qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "1536", "-smp", "2",
		"-kernel", kernel, "-initrd", initrd, "-append", "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 net.ifnames=0",
		"-drive", "file="+disk+",if=virtio,format=raw", "-netdev", "user,id=n0"+fwd, "-device", "virtio-net-pci,netdev=n0",
		"-display", "none", "-serial", "file:"+vm.Console, "-monitor", "none", "-no-reboot")
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	go func() { _ = vm.cmd.Wait(); close(vm.done) }()
	t.Cleanup(func() {
		vm.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(vm.Console)
			t.Logf("serial console (tail):\n%s", tailLines(b, 60))
		}
	})
	return vm
}

// WaitConsole waits until the serial console shows a line containing want.
func (vm *SystemdVM) WaitConsole(ctx context.Context, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if f, err := os.Open(vm.Console); err == nil {
			found := scanFor(f, want)
			f.Close()
			if found {
				return nil
			}
		}
		select {
		case <-vm.done:
			return fmt.Errorf("qemu exited before the console showed %q", want)
		case <-ctx.Done():
			return fmt.Errorf("console did not show %q within %s", want, timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func scanFor(r io.Reader, want string) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return true
		}
	}
	return false
}

func tailLines(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
