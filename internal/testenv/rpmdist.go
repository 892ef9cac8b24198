package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/fixture"
)

// RPMDist is the test-built RPM distribution (see fixture.RPMDist).
type RPMDist = fixture.RPMDist

// RPMDistPort is the port the RPM distribution's webd service listens on.
const RPMDistPort = fixture.RPMDistPort

// BuildRPMDist returns the cached test-built RPM distribution, building it on first use with
// rpmbuild, createrepo_c and the host's dnf.
func BuildRPMDist(t testing.TB) *RPMDist {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "rpmbuild", "rpm", "createrepo_c", "dnf", "busybox")
	d, err := fixture.BuildRPMDist(func(f string, a ...any) { t.Logf(f, a...) })
	if err != nil {
		t.Fatalf("building the test RPM distribution: %v", err)
	}
	return d
}

// ImportRoot makes sure tag in the engine holds root, imported with `docker import`, and
// returns the tag; id (the root's cache key) decides whether an existing tag is current.
func ImportRoot(t testing.TB, root, tag, id string) string {
	t.Helper()
	RequireDocker(t)
	importMu.Lock()
	defer importMu.Unlock()
	out, _ := exec.Command("docker", "image", "inspect", "-f", "{{index .Config.Labels \""+RootKeyLabel+"\"}}", tag).Output()
	if strings.TrimSpace(string(out)) == id {
		return tag
	}
	sh := fmt.Sprintf("tar -C %q --numeric-owner --xattrs -cf - . | docker import --change 'LABEL %s=%s' - %s", root, RootKeyLabel, id, tag)
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	return tag
}

// ServeDir serves dir over HTTP on 127.0.0.1 for the test and returns its base URL.
func ServeDir(t testing.TB, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/"
}

// RPMDistInstBase returns the cached base root with dnf in it (see
// fixture.BuildRPMDistInstBase), building it on first use.
func RPMDistInstBase(t testing.TB, d *RPMDist) string {
	t.Helper()
	RequireCommands(t, "debootstrap")
	root, err := fixture.BuildRPMDistInstBase(d, func(f string, a ...any) { t.Logf(f, a...) })
	if err != nil {
		t.Fatalf("building the base with dnf: %v", err)
	}
	return root
}

// PacmanDist is the test-built pacman distribution (see fixture.PacmanDist).
type PacmanDist = fixture.PacmanDist

// BuildPacmanDist returns the cached test-built pacman distribution, building it on first use
// with bsdtar, repo-add and the host's pacman.
func BuildPacmanDist(t testing.TB) *PacmanDist {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "pacman", "repo-add", "bsdtar", "zstd", "busybox")
	d, err := fixture.BuildPacmanDist(func(f string, a ...any) { t.Logf(f, a...) })
	if err != nil {
		t.Fatalf("building the test pacman distribution: %v", err)
	}
	return d
}

// ZypperInstBase returns the cached base root with zypper in it (see
// fixture.BuildZypperInstBase), building it on first use.
func ZypperInstBase(t testing.TB, d *RPMDist) string {
	t.Helper()
	RequireCommands(t, "debootstrap")
	root, err := fixture.BuildZypperInstBase(d, func(f string, a ...any) { t.Logf(f, a...) })
	if err != nil {
		t.Fatalf("building the base with zypper: %v", err)
	}
	return root
}

// PacmanInstBase returns the cached base root with pacman in it (see
// fixture.BuildPacmanInstBase), building it on first use.
func PacmanInstBase(t testing.TB, d *PacmanDist) string {
	t.Helper()
	RequireCommands(t, "debootstrap")
	root, err := fixture.BuildPacmanInstBase(d, func(f string, a ...any) { t.Logf(f, a...) })
	if err != nil {
		t.Fatalf("building the base with pacman: %v", err)
	}
	return root
}
