package experiment

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vm2image/vm2image/internal/testenv"
)

// bootWebVM starts the WebVM fixture's services on the ports the suite chooses.
const bootWebVM = `sed -i "s/listen 80 default_server/listen $PORT_NGINX default_server/; s/listen \[::\]:80 default_server/listen [::]:$PORT_NGINX default_server/" /etc/nginx/sites-available/default
/usr/sbin/nginx
setpriv --reuid=app --regid=app --init-groups busybox httpd -p 127.0.0.1:$PORT_APP -h /srv/app/public`

// smallSuite writes the test's suite: the WebVM fixture (the same recipe as testenv's, so its
// cached root) booted, with two settings, one repeat; an unreachable agent; and a fixture
// whose root cannot be built.
func smallSuite(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	recipes := map[string]any{"recipes": map[string]any{
		"webvm":  map[string]any{"profile": "test web VM", "suite": testenv.WebVM.Suite, "packages": testenv.WebVM.Packages, "scripts": []string{testenv.WebVM.Script}, "start": bootWebVM, "ports": []string{"nginx", "app"}},
		"broken": map[string]any{"suite": "no-such-release"},
	}}
	b, err := json.Marshal(recipes) // YAML is a superset of JSON

	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, dir, "recipes.yaml", string(b))
	broken := filepath.Join(testenv.CacheDir(), Recipe{Suite: "no-such-release"}.root().Key())
	t.Cleanup(func() { os.RemoveAll(broken + ".building"); os.Remove(broken + ".lock") })
	writeTestFile(t, dir, "token", "not-the-token-4f9c2a7e1b3d8f6a0c5e9b2d7a1f3c8e\n") // strong enough, and wrong
	base := "docker-daemon:" + testenv.EngineBase(t)
	writeTestFile(t, dir, "suite.yaml", fmt.Sprintf(`name: small
recipes: recipes.yaml
sources:
  - fixture: webvm
    mode: boot
    base: %[1]s
  - name: unreachable
    source: 127.0.0.1:1
    token_file: token
    base: %[1]s
  - fixture: broken
matrix:
  strategy: [checksum, rsync]
  packages: [on]
options:
  packages_cache: %[2]s
  work_dir: %[3]s
`, base, testenv.CacheDir(), t.TempDir()))
	return filepath.Join(dir, "suite.yaml")
}

// TestSmallSuite runs a small suite and checks its files and figures, then resumes it after
// deleting one run.
func TestSmallSuite(t *testing.T) {
	testenv.Short(t)
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "rsync", "tar", "unshare", "chroot")
	testenv.Root(t, testenv.WebVM)
	s, err := LoadSuite(smallSuite(t))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	var progress bytes.Buffer
	opts := Options{OutDir: out, Progress: &progress, KeepImages: true, AgentBinary: testenv.AgentBinary(t), InitBinary: testenv.InitBinary(t)}
	res, err := Run(context.Background(), s, opts)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.RunsOK != 4 || res.RunsFailed != 8 {
		t.Errorf("%d runs ok, %d failed; want 4 (webvm) and 8 (unreachable, broken)", res.RunsOK, res.RunsFailed)
	}
	checkFiles(t, out, res)
	for _, c := range res.Cells {
		checkCell(t, c, out)
	}
	checkMarkdown(t, out, res)
	t.Logf("suite: %.1fs wall, %.1fs in runs, overhead %.2f%%", res.WallSeconds, res.RunSeconds, res.OverheadPercent)

	t.Run("resume", func(t *testing.T) {
		if _, err := Run(context.Background(), s, Options{OutDir: out}); err == nil || !strings.Contains(err.Error(), "--resume") {
			t.Fatalf("a second run without resume: %v, want an error that suggests --resume", err)
		}
		if err := os.Remove(filepath.Join(out, "runs", "webvm.one-layer.gzip.r1.json")); err != nil {
			t.Fatal(err)
		}
		progress.Reset()
		opts.Resume = true
		res2, err := Run(context.Background(), s, opts)
		t.Logf("progress:\n%s", progress.String())
		if err != nil {
			t.Fatal(err)
		}
		if res2.RunsThisTime != 1 || strings.Count(progress.String(), "] ") != 1 || !strings.Contains(progress.String(), "] webvm: one layer") {
			t.Errorf("resume ran %d runs, want only the deleted one", res2.RunsThisTime)
		}
		if res2.RunsOK != 4 || res2.RunsFailed != 8 {
			t.Errorf("after resume: %d ok, %d failed", res2.RunsOK, res2.RunsFailed)
		}
	})
}

// checkFiles checks that every result file exists and that the plots are valid PNG and SVG.
func checkFiles(t *testing.T, out string, res *Results) {
	t.Helper()
	for _, name := range Plots {
		f, err := os.Open(filepath.Join(out, name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s.png: %v", name, err)
		}
		f.Close()
		b, err := os.ReadFile(filepath.Join(out, name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkXML(b); err != nil {
			t.Errorf("%s.svg: %v", name, err)
		}
	}
	loaded, err := LoadResults(filepath.Join(out, "results.json"))
	if err != nil || len(loaded.Cells) != len(res.Cells) {
		t.Fatalf("results.json: %v", err)
	}
	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 1+res.RunsOK+res.RunsFailed {
		t.Errorf("results.csv: %d rows (%v), want a header and %d runs", len(rows), err, res.RunsOK+res.RunsFailed)
	}
}

func checkXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		return fmt.Errorf("root element %q, want svg", root)
	}
	return nil
}

// checkCell checks a cell's runs: failures carry their error; a conversion's layers add up to
// its image and its diff layer holds the entries its figures say.
func checkCell(t *testing.T, c *CellResult, out string) {
	t.Helper()
	for _, run := range c.Runs {
		if c.Source != "webvm" {
			if run.OK || run.Error == "" {
				t.Errorf("%s: ok=%v error=%q, want a failure with its error", c.ID, run.OK, run.Error)
			}
			continue
		}
		if !run.OK {
			t.Errorf("%s failed: %s", c.ID, run.Error)
			continue
		}
		switch c.Kind {
		case KindConvert:
			checkConversion(t, c, run, filepath.Join(out, "images", runName(c.ID, run.Repeat)+".tar"))
		case Kind2014:
			b := run.Baseline
			if b.BuildImageBytes == 0 || b.LayerBytes == 0 || b.FullTarCompressed == 0 || b.ImageBytes != int64(run.Metrics["image_bytes"]) {
				t.Errorf("%s: figures missing: %+v", c.ID, b)
			}
		case KindOneLayer:
			if run.Metrics["full_tar_compressed"] <= 0 || run.Metrics["full_tar_compressed"] >= run.Metrics["full_tar_bytes"] {
				t.Errorf("%s: tar %v, compressed %v", c.ID, run.Metrics["full_tar_bytes"], run.Metrics["full_tar_compressed"])
			}
		}
	}
}

func checkConversion(t *testing.T, c *CellResult, run *RunResult, archive string) {
	t.Helper()
	rep := run.Report
	var sum int64
	for _, l := range rep.Image.Layers {
		sum += l.Compressed
	}
	if cfg := rep.Image.Bytes - sum; cfg <= 0 || cfg > 64<<10 || run.Metrics["image_config_bytes"] != float64(cfg) {
		t.Errorf("%s: image %d bytes, layers %d: the config would be %d bytes", c.ID, rep.Image.Bytes, sum, cfg)
	}
	if rep.BytesTransferred == 0 {
		t.Errorf("%s: nothing transferred from the booted VM's agent", c.ID)
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != len(rep.Image.Layers) {
		t.Fatalf("%s: %d layers (%v), report %d", c.ID, len(layers), err, len(rep.Image.Layers))
	}
	for i, l := range layers {
		if sz, _ := l.Size(); sz != rep.Image.Layers[i].Compressed {
			t.Errorf("%s: layer %d (%s) is %d bytes, the report says %d", c.ID, i, rep.Image.Layers[i].Role, sz, rep.Image.Layers[i].Compressed)
		}
		if rep.Image.Layers[i].Role != "vm-diff" {
			continue
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		entries, whiteouts, files, content := countLayer(t, rc)
		rc.Close()
		dl, d := rep.DiffLayer, rep.Diff
		if entries != dl.Entries || whiteouts != dl.Whiteouts+dl.Opaques || content != dl.ContentBytes || files != dl.Files {
			t.Errorf("%s: the diff layer holds %d entries, %d whiteouts, %d files, %d bytes; the report says %+v", c.ID, entries, whiteouts, files, content, dl)
		}
		if changed := d.Added + d.Modified + d.Metadata + d.TypeChanged; entries-whiteouts < changed || (whiteouts > 0) != (d.Deleted+d.DirReplaced > 0) || whiteouts > d.Deleted+d.DirReplaced {
			t.Errorf("%s: the diff layer's %d entries and %d whiteouts do not match the diff's %+v", c.ID, entries, whiteouts, d)
		}
		if run.Metrics["diff_layer_entries"] != float64(entries) || run.Metrics["diff_added"] != float64(d.Added+d.TypeChanged) {
			t.Errorf("%s: metrics %v do not match the report", c.ID, run.Metrics)
		}
	}
}

func countLayer(t *testing.T, r io.Reader) (entries, whiteouts, files, content int64) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		entries++
		switch {
		case strings.HasPrefix(filepath.Base(h.Name), ".wh."):
			whiteouts++
		case h.Typeflag == tar.TypeReg:
			files++
			content += h.Size
		}
	}
}

// checkMarkdown checks that results.md carries each conversion's diff figures and the failures.
func checkMarkdown(t *testing.T, out string, res *Results) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, c := range res.Cells {
		if c.Source != "webvm" || c.Kind != KindConvert || len(c.Runs) == 0 || c.Runs[0].Report == nil {
			continue
		}
		d := c.Runs[0].Report.Diff
		row := fmt.Sprintf("| %s | %d -> %d |", c.Label, c.Runs[0].Report.Packages.RootsBefore, c.Runs[0].Report.Packages.RootsAfter)
		added := fmt.Sprintf("| %d (%.2f MB) | %d (%.2f MB) | %d (%.2f MB) |", d.Added+d.TypeChanged, float64(d.AddedBytes)/1e6,
			d.Modified, float64(d.ModifiedBytes)/1e6, d.Deleted, float64(d.DeletedBytes)/1e6)
		if !strings.Contains(md, row) || !strings.Contains(md, added) {
			t.Errorf("results.md lacks the row %q ... %q", row, added)
		}
	}
	for _, want := range []string{"## webvm", "## unreachable", "## broken", "failed: ", "Stored bytes for N converted VMs"} {
		if !strings.Contains(md, want) {
			t.Errorf("results.md lacks %q", want)
		}
	}
}
