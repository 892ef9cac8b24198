package testenv

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Deb is a package for DebRepo: an empty package of architecture all with a postinst script.
type Deb struct {
	Name, Version, Postinst string
}

// DebRepo builds debs with dpkg-deb, indexes them with dpkg-scanpackages and serves them over
// http on addr ("127.0.0.1:0") as a flat apt repository until the test ends. It returns the
// repository's URL, for "deb [trusted=yes] URL ./".
func DebRepo(t testing.TB, addr string, debs ...Deb) string {
	t.Helper()
	RequireCommands(t, "dpkg-deb", "dpkg-scanpackages")
	repo := t.TempDir()
	for _, d := range debs {
		pkg := t.TempDir()
		files := map[string]string{
			"DEBIAN/control": "Package: " + d.Name + "\nVersion: " + d.Version +
				"\nArchitecture: all\nMaintainer: vm2image tests <tests@example.org>\nDescription: test package\n",
			"DEBIAN/postinst":                 d.Postinst,
			"usr/share/" + d.Name + "/README": d.Name + "\n",
		}
		for name, text := range files {
			p := filepath.Join(pkg, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		deb := filepath.Join(repo, d.Name+"_"+d.Version+"_all.deb")
		if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, deb).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb: %v\n%s", err, out)
		}
	}
	scan := exec.Command("dpkg-scanpackages", ".", "/dev/null")
	scan.Dir = repo
	out, err := scan.Output()
	if err != nil {
		t.Fatalf("dpkg-scanpackages: %v", err)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(repo))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}
