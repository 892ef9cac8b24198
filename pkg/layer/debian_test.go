package layer_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/diff/difftest"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/source"
)

// mountDirs are the directories whose contents a dir: source does not walk.
var mountDirs = map[string]bool{"proc": true, "sys": true, "dev": true, "run": true}

func underMountDir(p string) bool {
	top, _, nested := strings.Cut(p, "/")
	return nested && mountDirs[top]
}

// TestRoundTripDebian applies the checksum layer between two real Debian roots with umoci and
// compares the result with the new root. Only mtimes the checksum strategy deliberately leaves
// (files and directories whose only change is their mtime) may be the old ones.
func TestRoundTripDebian(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "umoci")
	oldDir, newDir := testenv.Root(t, difftest.DebianOld), testenv.Root(t, difftest.DebianNew)
	layerFile, res, st := buildLayer(t, oldDir, newDir, diff.Options{Strategy: diff.Checksum}, layer.Options{})
	root := umociApply(t, treeTar(t, oldDir), layerFile)
	old := snapshot(t, oldDir)
	got := snapshot(t, root)
	compareTrees(t, root, newDir, compareOpts{
		ignore: underMountDir,
		ignoreMTime: func(p string) bool {
			o, ok := old[p]
			return ok && got[p].MTime == o.MTime
		},
	})
	t.Logf("%d changes, layer of %d entries, %d bytes (%d whiteouts, %d opaques)",
		len(res.Changes), st.Entries, st.Bytes, st.Whiteouts, st.Opaques)
}

// TestThesisPipeline measures the 2014 pipeline on the real pair (rsync --compare-dest into a
// directory, a reverse rsync run for deletions, tar of the directory) against diff.Trees +
// layer.Write, and checks that the checksum layer is no larger than the pipeline's tar.
func TestThesisPipeline(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "rsync", "tar")
	oldDir, newDir := testenv.Root(t, difftest.DebianOld), testenv.Root(t, difftest.DebianNew)

	start := time.Now()
	out := filepath.Join(t.TempDir(), "out")
	excludes := []string{"--exclude=/proc/*", "--exclude=/sys/*", "--exclude=/dev/*", "--exclude=/run/*"}
	runCmd(t, "rsync", append([]string{"-aHAX", "--compare-dest=" + oldDir + "/"}, append(excludes, newDir+"/", out+"/")...)...)
	runCmd(t, "rsync", append([]string{"-ani", "--delete"}, append(excludes, newDir+"/", oldDir+"/")...)...)
	pipelineTar := filepath.Join(t.TempDir(), "changes.tar")
	runCmd(t, "tar", "-C", out, "-cf", pipelineTar, ".")
	pipeline := time.Since(start)
	fi, err := os.Stat(pipelineTar)
	if err != nil {
		t.Fatal(err)
	}

	for _, s := range []diff.Strategy{diff.Rsync, diff.Checksum} {
		start = time.Now()
		_, _, st := buildLayer(t, oldDir, newDir, diff.Options{Strategy: s}, layer.Options{})
		ours := time.Since(start)
		t.Logf("%-8s diff+layer %v, %d bytes; 2014 pipeline %v, %d bytes (%.1fx faster, %+.1f%% size)",
			s, ours.Round(time.Millisecond), st.Bytes, pipeline.Round(time.Millisecond), fi.Size(),
			pipeline.Seconds()/ours.Seconds(), 100*float64(st.Bytes-fi.Size())/float64(fi.Size()))
		if s == diff.Checksum && st.Bytes > fi.Size() {
			t.Errorf("checksum layer of %d bytes is larger than the 2014 pipeline's %d", st.Bytes, fi.Size())
		}
	}
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestRemoteWebVM makes the layer the converter makes: the diff between the Debian base root
// (dir:) and a running fixture VM served by its agent over TCP (tree, hashes and deltas over
// the wire), the layer's contents fetched from the agent. umoci applies it to the base root and
// the result is compared with the VM's root (what services write while running left aside).
func TestRemoteWebVM(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireCommands(t, "umoci")
	oldDir := testenv.Root(t, difftest.DebianOld)
	vm := testenv.StartWebVM(t)
	ctx := context.Background()
	vmSrc, err := source.Open(ctx, vm.Addr, source.Options{Token: vm.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer vmSrc.Close()
	// Mount points are seen from inside the VM by the agent (procfs is 0555), from outside here.
	volatile := func(p string) bool {
		return mountDirs[p] || underMountDir(p) || p == "var/log" || p == "tmp" || p == "var/lib/nginx" || strings.HasPrefix(p, "var/cache/")
	}
	opts := diff.Options{Strategy: diff.Rdiff, Excludes: []string{"/var/log/*", "/tmp/*", "/var/lib/nginx/*"}}
	res, err := diff.Trees(ctx, openDir(t, oldDir), vmSrc, opts)
	if err != nil {
		t.Fatalf("diff.Trees: %v", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "layer.tar"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := layer.Write(ctx, f, res, vmSrc, layer.Options{})
	f.Close()
	if err != nil {
		t.Fatalf("layer.Write: %v", err)
	}
	root := umociApply(t, treeTar(t, oldDir), f.Name())
	old, got := snapshot(t, oldDir), snapshot(t, root)
	compareTrees(t, root, vm.Root, compareOpts{
		ignore: volatile,
		ignoreMTime: func(p string) bool {
			o, ok := old[p]
			return ok && got[p].MTime == o.MTime
		},
	})
	t.Logf("%d changes (%+v); layer %d entries, %d bytes", len(res.Changes), res.Stats, st.Entries, st.Bytes)
}
