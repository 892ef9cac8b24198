package convert

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// These tests run the whole pipeline, in-process, over a dir: source and a base image in an
// OCI layout the test writes: no root, Docker engine or network (the packages phase finds
// nothing to install, so no builder runs).

// excluded reports whether a fixture path is left out by DefaultExcludes or testOptions'.
func excluded(p string) bool {
	return strings.HasPrefix(p, "tmp/") || strings.HasPrefix(p, "opt/cache/")
}

// wantOriginal is what the report must say of the VM's tree: its entries (the root too) and
// the bytes of its regular files (a hard link's name counts its file's size again).
func wantOriginal(files []vmFile) (entries, bytes int64) {
	size := map[string]int64{}
	entries = 1
	for _, f := range files {
		if excluded(f.path) {
			continue
		}
		entries++
		switch {
		case f.hard != "":
			bytes += size[f.hard]
		case !f.dir && f.link == "":
			size[f.path] = int64(len(f.body))
			bytes += size[f.path]
		}
	}
	return entries, bytes
}

// layerEntries lists a layer's tar entries by name, with their headers and contents.
func layerEntries(t *testing.T, l v1.Layer) map[string]*tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	must(t, err)
	defer rc.Close()
	out := map[string]*tarEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		b, err := io.ReadAll(tr)
		must(t, err)
		out[strings.TrimSuffix(h.Name, "/")] = &tarEntry{h, string(b)}
	}
}

type tarEntry struct {
	h    *tar.Header
	body string
}

func names(m map[string]*tarEntry) []string {
	var s []string
	for n := range m {
		s = append(s, n)
	}
	slices.Sort(s)
	return s
}

// TestRunDockerArchive converts the test VM to a docker-archive and checks every figure of the
// report against what the test built, and the archive and context against the report.
func TestRunDockerArchive(t *testing.T) {
	root := newVM(t, vmFiles)
	baseDir, baseImg := newBaseLayout(t, baseFiles, hostArch)
	initPath, initBody := fakeInit(t)
	o := testOptions(t, root, baseDir, initPath)
	o.Output = filepath.Join(t.TempDir(), "img.tar")
	var prog recordProgress
	o.Progress = &prog
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Error != "" || rep.FailedPhase != "" {
		t.Errorf("error %q in phase %q after a successful run", rep.Error, rep.FailedPhase)
	}
	var phases []string
	for _, p := range rep.Phases {
		phases = append(phases, p.Name)
	}
	want := []string{PhaseConnect, PhaseBase, PhasePackages, PhaseVolumes, PhaseDiff, PhaseRuntime, PhaseAssemble}
	if !slices.Equal(phases, want) || !slices.Equal(prog.started, want) || !slices.Equal(prog.done, want) {
		t.Errorf("phases %v, progress started %v done %v; want %v", phases, prog.started, prog.done, want)
	}
	checkSourceFigures(t, rep, root)
	checkBaseFigures(t, rep, baseImg)
	checkDiffFigures(t, rep)

	img, err := tarball.ImageFromPath(o.Output, nil)
	must(t, err)
	checkImage(t, rep, img, initBody)
	checkContext(t, rep, o.Output, initBody)
	if rep.Image.Tag != "vm2image/web_server.example:latest" {
		t.Errorf("tag %q, want one made of the VM's hostname", rep.Image.Tag)
	}
	if left, _ := os.ReadDir(o.WorkDir); len(left) != 0 {
		t.Errorf("work directory not cleaned up: %v", left)
	}
}

func checkSourceFigures(t *testing.T, rep *Report, root string) {
	t.Helper()
	entries, bytes := wantOriginal(vmFiles)
	if rep.OriginalEntries != entries || rep.OriginalBytes != bytes {
		t.Errorf("original: %d entries, %d bytes; the VM has %d, %d", rep.OriginalEntries, rep.OriginalBytes, entries, bytes)
	}
	if rep.Source != "dir:"+root || rep.OS != "debian 12" || rep.Arch != hostArch || rep.Strategy != string(DefaultStrategy) || rep.Transfer != string(TransferDiff) {
		t.Errorf("source %q os %q arch %q strategy %q transfer %q", rep.Source, rep.OS, rep.Arch, rep.Strategy, rep.Transfer)
	}
	if rep.BytesTransferred != 0 {
		t.Errorf("bytes transferred %d from a local source", rep.BytesTransferred)
	}
	p := rep.Packages
	if p == nil || p.Manager != pkgmgr.Dpkg || p.VM != 2 || p.Base != 2 || p.VMRoots != 1 || p.RootsBefore != 0 || !strings.Contains(p.Skipped, "already holds every package") {
		t.Errorf("packages %+v; want dpkg, 2 in the VM (1 root: foo needs libfoo1), 2 in the base, none to install", p)
	}
	if len(rep.Services) != 0 || len(rep.Ports) != 0 {
		t.Errorf("services %v ports %v: a dir: source has no processes", rep.Services, rep.Ports)
	}
	if len(rep.SecretFiles) != 1 || rep.SecretFiles[0].Path != "/root/.ssh/id_ed25519" || rep.SecretFiles[0].Layer != "vm-diff" {
		t.Errorf("secret files %+v; want the VM's one private key, in vm-diff", rep.SecretFiles)
	}
}

func checkBaseFigures(t *testing.T, rep *Report, baseImg v1.Image) {
	t.Helper()
	d, err := baseImg.Digest()
	must(t, err)
	layers, err := baseImg.Layers()
	must(t, err)
	size, err := layers[0].Size()
	must(t, err)
	b := rep.Base
	if b.Transport != "oci" || b.Digest != d.String() || b.Bytes != size || !strings.HasSuffix(b.Ref, "base-layout:12") {
		t.Errorf("base %+v; want oci, %s, %d bytes", b, d, size)
	}
}

// checkDiffFigures: the VM adds 10 entries to the base (hostname, /root, .ssh, the key,
// data.bin, its symlink and hard link, /tmp, /opt, /opt/cache), changes config.ini and
// deletes removed.txt; same.txt, os-release and the dpkg status are equal.
func checkDiffFigures(t *testing.T, rep *Report) {
	t.Helper()
	body := map[string]int64{}
	for _, f := range append(append([]vmFile(nil), baseFiles...), vmFiles...) {
		body[f.path] = int64(len(f.body))
	}
	s := rep.Diff
	added := body["etc/hostname"] + body["root/.ssh/id_ed25519"] + 2*body["srv/app/data.bin"]
	if s.OldEntries != int64(len(baseFiles)+1) || s.NewEntries != rep.OriginalEntries || s.Added != 10 || s.Modified != 1 || s.Deleted != 1 || s.Metadata != 0 ||
		s.AddedBytes != added || s.ModifiedBytes != body["srv/app/config.ini"] || s.DeletedBytes != int64(len("base only\n")) {
		t.Errorf("diff stats %+v; want 12 old entries, 10 added (%d bytes), 1 modified, 1 deleted", s, added)
	}
	l := rep.DiffLayer
	content := added - body["srv/app/data.bin"] + body["srv/app/config.ini"] // the hard link's bytes once
	if l == nil || l.Whiteouts != 1 || l.Files != 4 || l.Hardlinks != 1 || l.ContentBytes != content || len(rep.Problems) != 0 {
		t.Errorf("diff layer %+v problems %v; want 1 whiteout, 4 files, 1 hard link, %d content bytes", l, rep.Problems, content)
	}
}

// checkImage compares the written image with the report and looks into its layers.
func checkImage(t *testing.T, rep *Report, img v1.Image, initBody []byte) {
	t.Helper()
	d, err := img.Digest()
	must(t, err)
	id, err := img.ConfigName()
	must(t, err)
	if rep.Image.Digest != d.String() || rep.Image.ID != id.String() {
		t.Errorf("report digest %s id %s; written %s %s", rep.Image.Digest, rep.Image.ID, d, id)
	}
	layers, err := img.Layers()
	must(t, err)
	m, err := img.Manifest()
	must(t, err)
	total := m.Config.Size
	var roles []string
	for i, l := range layers {
		di, _ := l.DiffID()
		size, _ := l.Size()
		total += size
		if i < len(rep.Image.Layers) {
			lr := rep.Image.Layers[i]
			roles = append(roles, lr.Role)
			if lr.DiffID != di.String() || lr.Compressed != size {
				t.Errorf("layer %d (%s): report %s %d bytes, written %s %d", i, lr.Role, lr.DiffID, lr.Compressed, di, size)
			}
		}
	}
	if !slices.Equal(roles, []string{"base", "vm-diff", "runtime"}) || len(layers) != 3 || rep.Image.Bytes != total {
		t.Errorf("layers %v (%d written), %d bytes; want base, vm-diff, runtime, %d bytes", roles, len(layers), rep.Image.Bytes, total)
	}
	if len(layers) != 3 {
		return
	}
	if di, _ := layers[1].DiffID(); di.String() != rep.DiffLayer.DiffID {
		t.Errorf("vm-diff layer %s, report's diff layer %s", di, rep.DiffLayer.DiffID)
	}
	checkDiffLayer(t, layerEntries(t, layers[1]))
	rt := layerEntries(t, layers[2])
	if e := rt[".vm2image/init"]; e == nil || e.body != string(initBody) || e.h.Mode != 0o755 {
		t.Errorf("runtime layer %v: want .vm2image/init with the init's bytes, mode 0755", names(rt))
	}
	if e := rt[".vm2image/services.yaml"]; e == nil || !strings.Contains(e.body, "services:") {
		t.Errorf("runtime layer without services.yaml: %v", names(rt))
	}
	cf, err := img.ConfigFile()
	must(t, err)
	var excl []string
	must(t, json.Unmarshal([]byte(cf.Config.Labels[image.LabelExcludes]), &excl))
	if !slices.Contains(excl, "/opt/cache/*") || !slices.Contains(excl, "/tmp/*") || cf.Config.Labels[image.LabelOS] != "debian 12" {
		t.Errorf("labels %v: want the conversion's excludes and OS", cf.Config.Labels)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/.vm2image/init"}) || cf.Architecture != hostArch {
		t.Errorf("entrypoint %v arch %s", cf.Config.Entrypoint, cf.Architecture)
	}
}

// checkDiffLayer: exactly the VM's changes, with the symlink, the hard link and the whiteout,
// and nothing excluded.
func checkDiffLayer(t *testing.T, got map[string]*tarEntry) {
	t.Helper()
	want := []string{"etc", "etc/hostname", "opt", "opt/cache", "root", "root/.ssh", "root/.ssh/id_ed25519",
		"srv", "srv/app", "srv/app/.wh.removed.txt", "srv/app/config.ini", "srv/app/data.bin", "srv/app/data.hard",
		"srv/app/data.link", "tmp"}
	if !slices.Equal(names(got), want) {
		t.Errorf("vm-diff layer entries\n%v\nwant\n%v", names(got), want)
		return
	}
	if e := got["srv/app/data.link"]; e.h.Typeflag != tar.TypeSymlink || e.h.Linkname != "data.bin" {
		t.Errorf("data.link: type %c target %q", e.h.Typeflag, e.h.Linkname)
	}
	// The layer names the file once and links the other name to it (either may come first).
	a, b := got["srv/app/data.bin"], got["srv/app/data.hard"]
	if a.h.Typeflag == tar.TypeLink {
		a, b = b, a
	}
	if a.h.Typeflag != tar.TypeReg || a.body != "0123456789abcdef0123456789abcdef" || b.h.Typeflag != tar.TypeLink {
		t.Errorf("hard links: %c %q and %c -> %q", a.h.Typeflag, a.body, b.h.Typeflag, b.h.Linkname)
	}
	if e := got["srv/app/config.ini"]; e.body != "mode=vm, changed\n" {
		t.Errorf("config.ini holds %q", e.body)
	}
}

// checkContext: the Dockerfile, services.yaml, compose.yaml and init beside -o.
func checkContext(t *testing.T, rep *Report, out string, initBody []byte) {
	t.Helper()
	dir := contextDir(out)
	var got []string
	for _, p := range rep.Image.ContextFiles {
		got = append(got, filepath.Base(p))
	}
	if !slices.Equal(got, []string{"Dockerfile", "services.yaml", "compose.yaml", "vm2image-init"}) {
		t.Errorf("context files %v", got)
	}
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	must(t, err)
	for _, w := range []string{"FROM " + rep.Base.Ref, "1-vm-diff.tar", `"/.vm2image/init"`, "org.vm2image.excludes"} {
		if !strings.Contains(string(df), w) {
			t.Errorf("Dockerfile lacks %q:\n%s", w, df)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "vm2image-init")); err != nil || string(b) != string(initBody) {
		t.Errorf("context init: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "1-vm-diff.tar")); err == nil {
		t.Error("layer tar in the context without ContextLayers")
	}
}

// TestRunOCILayout: --format oci writes a layout whose image is the one the report describes,
// known by the tag's tag; full transfer and the diff transfer give the same VM layer.
func TestRunOCILayout(t *testing.T) {
	root := newVM(t, vmFiles)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	initPath, initBody := fakeInit(t)
	o := testOptions(t, root, baseDir, initPath)
	o.Output, o.Format, o.Tag, o.NoContext = filepath.Join(t.TempDir(), "layout"), FormatOCI, "example/web:v1", true
	o.Transfer = TransferFull
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(o.Output)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Fatalf("layout index %+v; want one image named v1", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	checkImage(t, rep, img, initBody)
	if rep.Image.Format != "oci" || rep.Image.Tag != "example/web:v1" || rep.Image.ContextFiles != nil || rep.Transfer != "full" {
		t.Errorf("image report %+v transfer %s", rep.Image, rep.Transfer)
	}
	if _, err := os.Stat(contextDir(o.Output)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("context written with NoContext: %v", err)
	}
	// The same conversion over the diff transfer writes the same VM layer, but for one loss:
	// the full transfer's unpack (pkg/source) does not restore a symlink's mtime, so a
	// symlink's header carries the time of the unpack (reported; pkg/source is not ours).
	o2 := testOptions(t, root, baseDir, initPath)
	o2.Output, o2.NoContext = filepath.Join(t.TempDir(), "img.tar"), true
	rep2, err := Run(context.Background(), o2)
	must(t, err)
	img2, err := tarball.ImageFromPath(o2.Output, nil)
	must(t, err)
	full, diffed := layerEntries(t, vmLayer(t, img)), layerEntries(t, vmLayer(t, img2))
	if !slices.Equal(names(full), names(diffed)) {
		t.Fatalf("vm-diff layer entries: transfer full %v, diff %v", names(full), names(diffed))
	}
	for n, e := range full {
		d := diffed[n]
		if e.h.Typeflag == tar.TypeSymlink {
			e.h.ModTime, e.h.PAXRecords, e.h.Format = d.h.ModTime, d.h.PAXRecords, d.h.Format
		}
		if e.body != d.body || e.h.Mode != d.h.Mode || !e.h.ModTime.Equal(d.h.ModTime) || e.h.Linkname != d.h.Linkname || e.h.Typeflag != d.h.Typeflag || e.h.Uid != d.h.Uid {
			t.Errorf("%s: transfer full %+v, diff %+v", n, e.h, d.h)
		}
	}
	if rep2.Diff.Added != rep.Diff.Added || rep2.OriginalBytes != rep.OriginalBytes {
		t.Errorf("figures differ between transfers: %+v / %+v", rep.Diff, rep2.Diff)
	}
}

func vmLayer(t *testing.T, img v1.Image) v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	must(t, err)
	if len(ls) != 3 {
		t.Fatalf("%d layers, want 3", len(ls))
	}
	return ls[1]
}

type recordProgress struct{ started, done []string }

func (p *recordProgress) Phase(name string)              { p.started = append(p.started, name) }
func (p *recordProgress) Done(name string, err error)    { p.done = append(p.done, name) }
func (p *recordProgress) Bytes(phase string, d, t int64) {}
