package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/image"
	"golang.org/x/sys/unix"
)

// TestConvertVariants converts the same fixture VM with the whole filesystem transferred, without
// the packages layer, and with each diff strategy, and checks every image's tree against the VM.
func TestConvertVariants(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "umoci", "skopeo")
	vm := testenv.StartWebVM(t)
	want := snapshotForCompare(t, vm.Root, true)
	var first *convert.Report
	for _, tc := range []struct {
		name string
		o    convertOptions
	}{
		{"transfer-full", convertOptions{transfer: "full"}},
		{"no-packages", convertOptions{noPackages: true}},
		{"rsync", convertOptions{strategy: "rsync"}},
		{"rdiff", convertOptions{strategy: "rdiff"}},
		{"oci", convertOptions{format: "oci"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.output = filepath.Join(t.TempDir(), "image")
			o.tag = "vm2image-test/variant:" + tc.name
			rep := convertFixture(t, vm, o)
			var tree string
			if o.format == "oci" {
				// Third-party readers of the layout: skopeo and umoci.
				run(t, "skopeo", "inspect", "oci:"+o.output+":oci")
				bundle := filepath.Join(t.TempDir(), "bundle")
				run(t, "umoci", "unpack", "--image", o.output+":oci", bundle)
				tree = filepath.Join(bundle, "rootfs")
				// umoci lays the image out as is: no engine-injected files to drop.
			} else {
				run(t, "docker", "load", "-i", o.output)
				t.Cleanup(func() { exec.Command("docker", "rmi", "-f", o.tag).Run() })
				tree = exportImage(t, o.tag)
			}
			got := snapshotForCompare(t, tree, false)
			if o.format == "oci" {
				for _, p := range []string{"dev", "proc", "sys", "run"} { // absent from a layout: the runtime makes them
					if _, ok := got[p]; !ok && want[p] == "mount point" {
						got[p] = "mount point"
					}
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%s: the image's tree differs from the VM's (-vm +image):\n%s", tc.name, d)
			}
			switch tc.name {
			case "no-packages":
				if rep.Packages == nil || rep.Packages.Skipped == "" || len(rep.Image.Layers) != 3 {
					t.Errorf("no-packages: packages %+v, %d layers", rep.Packages, len(rep.Image.Layers))
				}
			case "transfer-full":
				if rep.BytesTransferred < 20<<20 {
					t.Errorf("transfer full moved only %d bytes", rep.BytesTransferred)
				}
			case "rdiff":
				if rep.Diff.Modified > 0 && rep.Diff.DeltaBytes == 0 {
					t.Errorf("rdiff reported no delta bytes for %d modified files", rep.Diff.Modified)
				}
			}
			if tc.name != "no-packages" {
				if first == nil {
					first = rep
				} else if rep.Packages.LayerDiffID != first.Packages.LayerDiffID || !rep.Packages.CacheHit {
					t.Errorf("a second conversion with a warm cache should reuse the packages layer: %s (hit %v) vs %s",
						rep.Packages.LayerDiffID, rep.Packages.CacheHit, first.Packages.LayerDiffID)
				}
			}
		})
	}
}

// TestConvertPushToRegistry pushes a conversion to Debian's docker-registry on 127.0.0.1 and
// reads it back with skopeo.
func TestConvertPushToRegistry(t *testing.T) {
	testenv.Short(t)
	testenv.RequireCommands(t, "skopeo")
	vm := testenv.StartWebVM(t)
	reg := testenv.Registry(t)
	ref := reg + "/converted/web:1"
	rep := convertFixture(t, vm, convertOptions{push: ref})
	out := run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+ref)
	if !strings.Contains(out, rep.Image.Digest) {
		t.Errorf("skopeo inspect does not show our digest %s:\n%s", rep.Image.Digest, out)
	}
	for _, l := range rep.Image.Layers {
		if !strings.Contains(out, l.Digest) {
			t.Errorf("layer %s (%s) missing from the registry's manifest", l.Digest, l.Role)
		}
	}
}

// TestConvertBadInput: each failure gives a clear error and leaves nothing at the output path.
func TestConvertBadInput(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	vm := testenv.StartWebVM(t)
	t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	writeFile(t, tok, string(vm.Token))
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "not-the-token-9d4e1a7c3b8f2e6a0d5c9b1f7e3a8c2d") // strong enough, and wrong
	base := "docker-daemon:" + testenv.EngineBase(t)
	full := filepath.Join(dir, "full")
	must(t, os.Mkdir(full, 0o755))
	if err := unix.Mount("tmpfs", full, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(full, unix.MNT_DETACH) })
	for _, tc := range []struct {
		name, spec, token, base, output, want string
	}{
		{"agent unreachable", "127.0.0.1:1", tok, base, filepath.Join(dir, "a.tar"), "connect"},
		{"wrong token", vm.Addr, bad, base, filepath.Join(dir, "b.tar"), "authentication"},
		{"base not found", vm.Addr, tok, "docker-daemon:vm2image-test/no-such-base:1", filepath.Join(dir, "c.tar"), "no-such-base"},
		{"disk full", vm.Addr, tok, base, filepath.Join(full, "d.tar"), "no space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := convertOptions{output: tc.output, base: tc.base, format: "docker-archive", builder: "chroot",
				strategy: "checksum", transfer: "diff", compression: "gzip", cacheDir: convertCacheDir()}
			o.tokenFile = tc.token
			var out, errOut bytes.Buffer
			err := runConvert(context.Background(), o, tc.spec, &out, &errOut)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(tc.output), "*"))
			for _, p := range left {
				if p != tok && p != bad && p != full && !strings.HasSuffix(p, "token") {
					t.Errorf("%s left behind %s", tc.name, p)
				}
			}
		})
	}
}

// TestConvertAgentDiesMidTransfer kills the VM (and its agent) while the VM's diff is being
// transferred: a clear error, nothing at the output path.
func TestConvertAgentDiesMidTransfer(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	vm := testenv.StartWebVM(t)
	t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
	out := filepath.Join(t.TempDir(), "vm.tar")
	_, err := convert.Run(context.Background(), convert.Options{
		Source: vm.Addr, Output: out, Base: "docker-daemon:" + testenv.EngineBase(t), Transfer: convert.TransferFull,
		SourceOptions: sourceToken(vm.Token), CacheDir: convertCacheDir(), InitBinary: testenv.InitBinary(t),
		Progress: killAt{phase: convert.PhaseDiff, vm: vm},
	})
	if err == nil {
		t.Fatal("conversion succeeded although its agent died")
	}
	t.Logf("error: %v", err)
	if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("output left behind: %v", serr)
	}
	var ie *image.ResolveError
	if errors.As(err, &ie) {
		t.Errorf("wrong failure: %v", err)
	}
}

type killAt struct {
	phase string
	vm    *testenv.VM
}

func (k killAt) Phase(name string) {
	if name == k.phase {
		k.vm.Stop()
	}
}
func (killAt) Done(string, error)         {}
func (killAt) Bytes(string, int64, int64) {}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
