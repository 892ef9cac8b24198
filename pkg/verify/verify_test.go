package verify

import (
	"archive/tar"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/source"
	"golang.org/x/sys/unix"
)

const statusA = "Package: alpha\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n\n" +
	"Package: beta\nStatus: install ok installed\nArchitecture: all\nVersion: 2:3.1\n"

// vmRoot writes the test VM's root: what the image layers of imageLayers hold, plus a few
// things the image must not be compared on (excluded /tmp, the mount points' contents).
func vmRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(rel string, mode os.FileMode, body string) {
		p := filepath.Join(root, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(body), mode))
		must(t, os.Chmod(p, mode))
	}
	for _, d := range []string{"dev", "proc", "tmp", "usr/lib", "srv/www/docs"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(t, os.Chmod(filepath.Join(root, "proc"), 0o555)) // mount points: type only
	mk("etc/conf", 0o644, "conf\n")
	mk("etc/secret", 0o600, "s3cret\n")
	mk("bin/tool", 0o755, "#!/bin/sh\n")
	must(t, os.Link(filepath.Join(root, "bin/tool"), filepath.Join(root, "bin/tool2")))
	must(t, os.Symlink("usr/lib", filepath.Join(root, "lib")))
	mk("srv/www/docs/index.html", 0o644, "<h1>hi</h1>\n")
	mk("var/lib/dpkg/status", 0o644, statusA)
	mk("tmp/scratch", 0o644, "excluded by the image's label")
	mk("dev/console", 0o600, "the mount point's contents are not compared")
	must(t, unix.Mkfifo(filepath.Join(root, "srv/fifo"), 0o640))
	must(t, unix.Setxattr(filepath.Join(root, "etc/conf"), "user.note", []byte("kept"), 0))
	return root
}

// imageLayers is the VM's root as two layers, with what the runtime adds (/.vm2image) and
// what differs legitimately (the mount points' contents, excluded paths).
func imageLayers(t *testing.T) [][]byte {
	base := layerTar(t, te{name: "bin/"}, te{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o755}, te{name: "bin/tool2=>bin/tool"},
		te{name: "dev/"}, te{name: "dev/null", typ: tar.TypeChar, major: 1}, te{name: "etc/"}, te{name: "etc/secret", body: "old"},
		te{name: "lib->usr/lib"}, te{name: "proc/"}, te{name: "tmp/"}, te{name: "tmp/other", body: "x"}, te{name: "usr/"}, te{name: "usr/lib/"},
		te{name: "var/"}, te{name: "var/lib/"}, te{name: "var/lib/dpkg/"}, te{name: "var/lib/dpkg/status", body: "Package: alpha\n"})
	upper := layerTar(t, te{name: "etc/conf", body: "conf\n", xattrs: map[string]string{"user.note": "kept"}},
		te{name: "etc/secret", body: "s3cret\n", mode: 0o600}, te{name: "srv/"}, te{name: "srv/fifo", typ: tar.TypeFifo, mode: 0o640},
		te{name: "srv/www/"}, te{name: "srv/www/docs/"}, te{name: "srv/www/docs/index.html", body: "<h1>hi</h1>\n"},
		te{name: "var/lib/dpkg/status", body: statusA}, te{name: ".vm2image/"}, te{name: ".vm2image/init", body: "init"})
	return [][]byte{base, upper}
}

func verifyDir(t *testing.T, root string, opts Options, layers ...[]byte) *Report {
	t.Helper()
	src, err := source.Open(context.Background(), "dir:"+root, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := Image(context.Background(), testImage(t, []string{"/tmp/*"}, layers...), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func diffs(r *Report) []Difference { return r.Differences }

type imageCase struct {
	name   string
	change func(t *testing.T, root string)
	opts   Options
	want   []Difference
}

// TestImage compares the test image with its VM, then with VMs changed in one way each: every
// change is found, named with its values, and nothing else is.
func TestImage(t *testing.T) {
	for _, tc := range imageCases() {
		t.Run(tc.name, func(t *testing.T) {
			root := vmRoot(t)
			if tc.change != nil {
				tc.change(t, root)
			}
			r := verifyDir(t, root, tc.opts, imageLayers(t)...)
			got := diffs(r)
			for i := range got {
				if got[i].Kind == KindContent { // digests: check the kind, not the values
					got[i].VM, got[i].Image = "sha256:2b3b68cb6e1d5e5d", "sha256:1a2a9a0b4f1b4a2c"
				}
			}
			if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("differences (-want +got):\n%s\nnotes: %q", d, r.Notes)
			}
			if r.Equal != (len(tc.want) == 0) || r.VMEntries == 0 || r.ImageEntries == 0 {
				t.Errorf("report: equal %v, %d VM entries, %d image entries", r.Equal, r.VMEntries, r.ImageEntries)
			}
			if tc.opts.MaxDiffs > 0 && (!r.Truncated || r.Counts[KindContent] != 1 || r.Counts[KindSize] != 1) {
				t.Errorf("MaxDiffs: truncated %v, counts %v", r.Truncated, r.Counts)
			}
			if tc.name == "packages" && (r.Packages.VM != 3 || r.Packages.Image != 2) {
				t.Errorf("packages counted %+v", r.Packages)
			}
		})
	}
}

func imageCases() []imageCase {
	return []imageCase{
		{"equal", nil, Options{}, nil},
		{"content", func(t *testing.T, root string) { write(t, root, "etc/conf", "CONF\n") }, Options{},
			[]Difference{{KindContent, "etc/conf", "sha256:2b3b68cb6e1d5e5d", "sha256:1a2a9a0b4f1b4a2c"}}},
		{"size, mode and owner", func(t *testing.T, root string) {
			write(t, root, "etc/secret", "longer secret\n")
			must(t, os.Chmod(filepath.Join(root, "etc/secret"), 0o640))
			must(t, os.Lchown(filepath.Join(root, "etc/secret"), 5, 6))
		}, Options{}, []Difference{{KindMode, "etc/secret", "0640", "0600"}, {KindOwner, "etc/secret", "5:6", "0:0"}, {KindSize, "etc/secret", "14", "7"}}},
		{"xattr and symlink", func(t *testing.T, root string) {
			must(t, unix.Setxattr(filepath.Join(root, "etc/conf"), "user.note", []byte("changed"), 0))
			must(t, os.Remove(filepath.Join(root, "lib")))
			must(t, os.Symlink("/usr/lib", filepath.Join(root, "lib")))
		}, Options{}, []Difference{{KindXattr, "etc/conf", `user.note="changed"`, `user.note="kept"`}, {KindTarget, "lib", "/usr/lib", "usr/lib"}}},
		{"hard link split, type changed", func(t *testing.T, root string) {
			must(t, os.Remove(filepath.Join(root, "bin/tool2")))
			write(t, root, "bin/tool2", "#!/bin/sh\n")
			must(t, os.Chmod(filepath.Join(root, "bin/tool2"), 0o755))
			must(t, os.Remove(filepath.Join(root, "srv/fifo")))
			must(t, os.Mkdir(filepath.Join(root, "srv/fifo"), 0o640))
			write(t, root, "srv/fifo/inside", "x")
		}, Options{}, []Difference{{KindHardlink, "bin/tool2", "not linked to an earlier name", "linked to bin/tool"},
			{KindType, "srv/fifo", "dir (+1 entry below)", "fifo"}}},
		{"missing and extra subtrees", func(t *testing.T, root string) {
			must(t, os.RemoveAll(filepath.Join(root, "srv/www")))
			write(t, root, "opt/a/b", "b")
		}, Options{}, []Difference{{KindMissing, "opt", "dir 0755 0:0 (+2 entries below)", ""},
			{KindExtra, "srv/www", "", "dir 0755 0:0 (+2 entries below)"}}},
		{"excludes and max diffs", func(t *testing.T, root string) {
			write(t, root, "etc/conf", "CONF\n")
			write(t, root, "etc/secret", "longer secret\n")
			write(t, root, "srv/www/docs/index.html", "changed\n")
		}, Options{Excludes: []string{"/srv/www"}, MaxDiffs: 1}, []Difference{{KindContent, "etc/conf", "sha256:2b3b68cb6e1d5e5d", "sha256:1a2a9a0b4f1b4a2c"}}},
		{"a mount point's contents", func(t *testing.T, root string) {
			// A listed directory on another device with nothing listed below it: the walk did not
			// enter it (a pseudo filesystem), so only its existence and type are compared.
			testenv.RequireRoot(t)
			www := filepath.Join(root, "srv/www")
			must(t, unix.Mount("tmpfs", www, "tmpfs", 0, "mode=700"))
			t.Cleanup(func() { unix.Unmount(www, unix.MNT_DETACH) })
		}, Options{}, nil},
		{"packages", func(t *testing.T, root string) {
			write(t, root, "var/lib/dpkg/status", strings.Replace(statusA, "Version: 1.0-1", "Version: 1.0-2", 1)+
				"\nPackage: gamma\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n")
		}, Options{Excludes: []string{"/var/lib/dpkg/status"}}, []Difference{{KindPackageVersion, "alpha:amd64", "1.0-2", "1.0-1"},
			{KindPackageMissing, "gamma:amd64", "1", ""}}},
	}
}

// TestImageNotes: sockets are left out with a note; an image without the excludes label is
// compared under the default excludes, and says so.
func TestImageNotes(t *testing.T) {
	root := vmRoot(t)
	l, err := net.Listen("unix", filepath.Join(root, "srv/sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	src, err := source.Open(context.Background(), "dir:"+root, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	r, err := Image(context.Background(), testImage(t, nil, imageLayers(t)...), src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Equal || !slices.Contains(r.Excludes, "/var/cache/apt/archives/*.deb") || len(r.Notes) != 2 ||
		!strings.Contains(r.Notes[0], "no org.vm2image.excludes label") || !strings.Contains(r.Notes[1], "1 sockets") {
		t.Errorf("equal %v, excludes %q, notes %q, differences %+v", r.Equal, r.Excludes, r.Notes, r.Differences)
	}
}

func write(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(body), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestImageSELinux: SELinux labels are dropped from the comparison unless KeepSELinux asks.
func TestImageSELinux(t *testing.T) {
	root := vmRoot(t)
	labelled := append(imageLayers(t), layerTar(t, te{name: "etc/conf", body: "conf\n",
		xattrs: map[string]string{"user.note": "kept", "security.selinux": "system_u:object_r:etc_t:s0\x00"}}))
	if r := verifyDir(t, root, Options{}, labelled...); !r.Equal {
		t.Errorf("a label the VM lacks counts by default: %+v", r.Differences)
	}
	r := verifyDir(t, root, Options{KeepSELinux: true}, labelled...)
	want := []Difference{{KindXattr, "etc/conf", "none", `security.selinux="system_u:object_r:etc_t:s0"`}}
	if d := cmp.Diff(want, r.Differences); d != "" {
		t.Errorf("KeepSELinux (-want +got):\n%s", d)
	}
}
