package main

import (
	"archive/tar"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
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
	if tried, ok := layerFile(t, layer, "var/lib/phonehome/tried"); !ok || !strings.HasPrefix(tried, "http://127.0.0.1:") {
		t.Errorf("the phonehome scriptlet did not run in the build or found no server to ask (%q, %v): the test proves nothing", tried, ok)
	}
	if n := hits.Load(); n > 0 {
		t.Errorf("a package scriptlet reached the repository's server on the host %d times during the install", n)
	}
	if layerHolds(t, layer, "var/lib/phonehome/reached") {
		t.Error("a package scriptlet got an answer from the network during the install")
	}
}

// phoneHomeBases are the bases an attack converts onto: one without an installer (the host's
// installer runs from outside the root) and one that carries it (it runs inside).
type phoneHomeBase struct {
	name, installer string
	base            func(t *testing.T) string
}

// convertPhoneHome converts vm onto each base and checks the phonehome scriptlet reached
// nothing; tag names the images.
func convertPhoneHome(t *testing.T, vm func(t *testing.T, url string) string, repo, tag string, bases []phoneHomeBase) {
	for _, b := range bases {
		t.Run(b.name, func(t *testing.T) {
			base := b.base(t)
			url, hits := phoneHomeServer(t, repo)
			rep, _ := convertDir(t, vm(t, url), base, fmt.Sprintf("vm2image-test/%s-%s:%d", tag, b.name, os.Getpid()))
			p := rep.Packages
			if p == nil || p.Skipped != "" || !strings.Contains(p.Installer, b.installer) {
				t.Fatalf("no packages layer %s: %+v", b.installer, p)
			}
			if len(p.Missing)+len(p.Errors) > 0 || p.Installed != p.VM {
				t.Errorf("the build failed: installed %d of %d, missing %v, errors %v", p.Installed, p.VM, p.Missing, p.Errors)
			}
			checkNoPhoneHome(t, p.CacheKey, hits)
		})
	}
}

// rpmPhoneHomeVM adds phonehome, installed without running its scriptlet here, to a VM made
// by mk.
func rpmPhoneHomeVM(d *testenv.RPMDist, mk func(*testing.T, string, string) string) func(*testing.T, string) string {
	return func(t *testing.T, url string) string {
		vm := mk(t, d.VM, url)
		run(t, "rpm", "--root="+vm, "--dbpath=/var/lib/rpm", "-i", "--nodeps", "--noscripts", filepath.Join(d.Repo, "phonehome-1.0-1.x86_64.rpm"))
		return vm
	}
}

// TestAttackScriptletNetworkRPM is a VM holding phonehome, a package whose %post asks the
// repository's HTTP server (on the host's loopback, as the VM's repository configuration names
// it) for a canary: dnf, the host's from outside the root or the base's inside it, downloads
// with the network, then installs, running %post, in a network namespace with only loopback,
// and the server never sees the canary asked for.
func TestAttackScriptletNetworkRPM(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	convertPhoneHome(t, rpmPhoneHomeVM(d, rpmVM), d.Repo, "rpm-phonehome", []phoneHomeBase{
		{"outside", "from outside the base root (the host's dnf)", func(t *testing.T) string {
			return testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
		}},
		{"inside", "in the base root (dnf)", func(t *testing.T) string {
			root := testenv.RPMDistInstBase(t, d)
			return testenv.ImportRoot(t, root, "vm2image-test/rpmbase:dnf", d.Key+"-"+filepath.Base(root))
		}},
	})
}

// TestAttackScriptletNetworkZypper is the RPM attack with zypper: zypper install
// --download-only with the network, then zypper --no-refresh install without.
func TestAttackScriptletNetworkZypper(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildRPMDist(t)
	convertPhoneHome(t, rpmPhoneHomeVM(d, suseRoot), d.Repo, "zypper-phonehome", []phoneHomeBase{
		{"outside", "from outside the base root (the host's zypper)", func(t *testing.T) string { return suseBase(t, d) }},
		{"inside", "in the base root (zypper)", func(t *testing.T) string {
			root := testenv.ZypperInstBase(t, d)
			return testenv.ImportRoot(t, root, "vm2image-test/rpmbase:zypper", d.Key+"-"+filepath.Base(root))
		}},
	})
}

// TestAttackScriptletNetworkPacman is the same attack on pacman: phonehome's post_install asks
// the server the root's pacman.conf names; pacman -Sw downloads with the network and pacman -S
// installs without.
func TestAttackScriptletNetworkPacman(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	d := testenv.BuildPacmanDist(t)
	vm := func(t *testing.T, url string) string {
		vm := pacmanVM(t, d.VM, url)
		conf := filepath.Join(t.TempDir(), "pacman.conf")
		writeFile(t, conf, fixture.PacmanConf("file://"+d.Repo))
		tmp := t.TempDir()
		run(t, "pacman", "-U", "--noconfirm", "--noscriptlet", "--root", vm, "--dbpath", filepath.Join(vm, "var/lib/pacman"),
			"--config", conf, "--cachedir", tmp, "--hookdir", tmp, "--logfile", "/dev/null", "--gpgdir", tmp,
			filepath.Join(d.Repo, "phonehome-1.0-1-x86_64.pkg.tar.zst"))
		return vm
	}
	convertPhoneHome(t, vm, d.Repo, "pacman-phonehome", []phoneHomeBase{
		{"outside", "from outside the base root (the host's pacman)", func(t *testing.T) string {
			return testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
		}},
		{"inside", "in the base root (pacman)", func(t *testing.T) string {
			root := testenv.PacmanInstBase(t, d)
			return testenv.ImportRoot(t, root, "vm2image-test/pacmanbase:pacman", d.Key+"-"+filepath.Base(root))
		}},
	})
}

// layerFile returns the content of the regular file name in the layer tar at p.
func layerFile(t *testing.T, p, name string) (string, bool) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatalf("opening the packages layer: %v", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return "", false
		}
		if h.Typeflag == tar.TypeReg && strings.TrimPrefix(path.Clean(h.Name), "/") == name {
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				t.Fatalf("reading %s from the packages layer: %v", name, err)
			}
			return string(b), true
		}
	}
}
