package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExperimentBadInput: a malformed suite names its line; a suite whose only source cannot
// be read still writes its results, with every run failed and its error.
func TestExperimentBadInput(t *testing.T) {
	t.Setenv("VM2IMAGE_INIT", "/bin/true") // the conversions fail on the source, not on finding init
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "name: bad\nsources:\n  - source: dir:/x\n    strategy: rsync\n")
	var out, errOut bytes.Buffer
	err := runExperiment(context.Background(), experimentOptions{output: filepath.Join(dir, "out")}, bad, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") || !strings.Contains(err.Error(), "line 4: field strategy not found") {
		t.Fatalf("malformed suite: %v", err)
	}

	suite := filepath.Join(dir, "missing.yaml")
	writeFile(t, suite, "name: missing\nsources:\n  - source: tar:"+filepath.Join(dir, "no-such.tar")+
		"\n    base: oci:"+filepath.Join(dir, "no-such-layout")+"\noptions:\n  work_dir: "+filepath.Join(dir, "work")+"\n")
	o := experimentOptions{output: filepath.Join(dir, "results")}
	if err := runExperiment(context.Background(), o, suite, &out, &errOut); err != nil {
		t.Fatalf("a suite whose source fails: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "0 runs ok, 3 failed") || strings.Count(errOut.String(), "no-such.tar: no such file") != 3 {
		t.Errorf("summary %q, progress %q", out.String(), errOut.String())
	}
	for _, f := range []string{"results.json", "results.csv", "results.md", "layers.svg", "tradeoff.png"} {
		if _, err := os.Stat(filepath.Join(o.output, f)); err != nil {
			t.Error(err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(o.output, "results.md"))
	if !strings.Contains(string(md), "failed: ") || !strings.Contains(string(md), "no-such.tar") {
		t.Errorf("results.md does not show the failures:\n%s", md)
	}

	errOut.Reset()
	if err := runExperiment(context.Background(), o, suite, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("rerun without --resume: %v", err)
	}
	o.resume = true
	errOut.Reset()
	if err := runExperiment(context.Background(), o, suite, &out, &errOut); err != nil || strings.Contains(errOut.String(), "] ") {
		t.Errorf("resume of a finished suite: %v, ran:\n%s", err, errOut.String())
	}
}
