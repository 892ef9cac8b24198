package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/fixture"
	"github.com/vm2image/vm2image/internal/testenv"
)

// phoneHomeServer serves dir over HTTP on 127.0.0.1 of the host's network namespace, as
// testenv.ServeDir does, and counts the requests for fixture.PhoneHomeCanary, which it
// answers.
func phoneHomeServer(t *testing.T, dir string) (url string, hits *atomic.Int32) {
	t.Helper()
	hits = &atomic.Int32{}
	files := http.FileServer(http.Dir(dir))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == fixture.PhoneHomeCanary {
			hits.Add(1)
			fmt.Fprintln(w, "reached")
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String() + "/", hits
}

// checkNoPhoneHome checks that the phonehome package's install scriptlet ran in the build
// (its /var/lib/phonehome/tried is in the packages layer) and never reached the repository's
// server, which the download half of the install had just used.
func checkNoPhoneHome(t *testing.T, layerKey string, hits *atomic.Int32) {
	t.Helper()
	layer := filepath.Join(convertCacheDir(), "layers", layerKey, "layer.tar")
	if !layerHolds(t, layer, "var/lib/phonehome/tried") {
		t.Error("the phonehome scriptlet did not run in the build: the test proves nothing")
	}
	if n := hits.Load(); n > 0 {
		t.Errorf("a package scriptlet reached the repository's server on the host %d times during the install", n)
	}
	if layerHolds(t, layer, "var/lib/phonehome/reached") {
		t.Error("a package scriptlet got an answer from the network during the install")
	}
}

// TestAttackScriptletNetworkRPM is a VM holding phonehome, a package whose %post asks the
// repository's HTTP server (on the host's loopback, as the VM's repository configuration names
// it) for a canary: the host's dnf downloads with the network, then installs, running %post,
// in a network namespace with only loopback, and the server never sees the canary asked for.
func TestAttackScriptletNetworkRPM(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
	url, hits := phoneHomeServer(t, d.Repo)
	vm := rpmVM(t, d.VM, url)
	// The VM has it installed (without running its scriptlet here).
	run(t, "rpm", "--root="+vm, "--dbpath=/var/lib/rpm", "-i", "--nodeps", "--noscripts", filepath.Join(d.Repo, "phonehome-1.0-1.x86_64.rpm"))
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/rpm-phonehome:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" || !strings.Contains(p.Installer, "from outside") {
		t.Fatalf("no packages layer from the host's dnf: %+v", p)
	}
	if len(p.Missing)+len(p.Errors) > 0 || p.Installed != p.VM {
		t.Errorf("the build failed: installed %d of %d, missing %v, errors %v", p.Installed, p.VM, p.Missing, p.Errors)
	}
	checkNoPhoneHome(t, p.CacheKey, hits)
}

// TestAttackScriptletNetworkPacman is the same attack on pacman: phonehome's post_install asks
// the server the root's pacman.conf names; pacman -Sw downloads with the network and pacman -S
// installs without.
func TestAttackScriptletNetworkPacman(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	base := testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
	url, hits := phoneHomeServer(t, d.Repo)
	vm := pacmanVM(t, d.VM, url)
	pkg := filepath.Join(d.Repo, "phonehome-1.0-1-x86_64.pkg.tar.zst")
	conf := filepath.Join(t.TempDir(), "pacman.conf")
	writeFile(t, conf, fixture.PacmanConf("file://"+d.Repo))
	tmp := t.TempDir()
	// The VM has it installed (without running its scriptlet here).
	run(t, "pacman", "-U", "--noconfirm", "--noscriptlet", "--root", vm, "--dbpath", filepath.Join(vm, "var/lib/pacman"),
		"--config", conf, "--cachedir", tmp, "--hookdir", tmp, "--logfile", "/dev/null", "--gpgdir", tmp, pkg)
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/pacman-phonehome:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" || !strings.Contains(p.Installer, "from outside") {
		t.Fatalf("no packages layer from the host's pacman: %+v", p)
	}
	if len(p.Missing)+len(p.Errors) > 0 || p.Installed != p.VM {
		t.Errorf("the build failed: installed %d of %d, missing %v, errors %v", p.Installed, p.VM, p.Missing, p.Errors)
	}
	checkNoPhoneHome(t, p.CacheKey, hits)
}

// TestAttackScriptletNetworkZypper is the RPM attack with the host's zypper: zypper install
// --download-only with the network, then zypper --no-refresh install without.
func TestAttackScriptletNetworkZypper(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	base := suseBase(t, d)
	url, hits := phoneHomeServer(t, d.Repo)
	vm := suseRoot(t, d.VM, url)
	run(t, "rpm", "--root="+vm, "--dbpath=/var/lib/rpm", "-i", "--nodeps", "--noscripts", filepath.Join(d.Repo, "phonehome-1.0-1.x86_64.rpm"))
	rep, _ := convertDir(t, vm, base, fmt.Sprintf("vm2image-test/zypper-phonehome:%d", os.Getpid()))
	p := rep.Packages
	if p == nil || p.Skipped != "" || !strings.Contains(p.Installer, "the host's zypper") {
		t.Fatalf("no packages layer from the host's zypper: %+v", p)
	}
	if len(p.Missing)+len(p.Errors) > 0 || p.Installed != p.VM {
		t.Errorf("the build failed: installed %d of %d, missing %v, errors %v", p.Installed, p.VM, p.Missing, p.Errors)
	}
	checkNoPhoneHome(t, p.CacheKey, hits)
}
