package experiment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vm2image/vm2image/internal/fixture"
	"github.com/vm2image/vm2image/internal/helperbin"
	"github.com/vm2image/vm2image/internal/tailbuf"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
)

// preparedSource is a source ready for its cells: fixtures built (and served or booted), the
// base image known.
type preparedSource struct {
	spec    SourceSpec
	source  string         // what convert reads: HOST:PORT, dir:PATH, tar:PATH
	opts    source.Options // token, wire compression
	base    string         // base image reference, or auto
	root    string         // a fixture's root on this machine
	closers []func()
}

func (p *preparedSource) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// excludes are the conversion's excludes for this source: the converter's defaults and the
// source's own.
func (p *preparedSource) excludes() []string {
	return append(append([]string(nil), image.DefaultExcludes...), p.spec.Excludes...)
}

// baseTag names the engine image a fixture's base is imported as.
const baseTag = "vm2image-experiment/debian"

// baseKeyLabel records which minbase root an imported base came from.
const baseKeyLabel = "org.vm2image.experiment.root-key"

func (r *runner) prepareSource(ctx context.Context, spec SourceSpec) (*preparedSource, error) {
	ps := &preparedSource{spec: spec, base: spec.Base}
	ps.opts = source.Options{Compression: r.suite.Options.WireCompression, WorkDir: r.work, Logf: r.opts.Logf}
	if spec.TokenFile != "" {
		tok, err := proto.ReadTokenFile(r.suitePath(spec.TokenFile))
		if err != nil {
			return ps, err
		}
		ps.opts.Token = tok
	}
	if spec.Fixture == "" {
		ps.source = spec.Source
		for _, pre := range []string{"dir:", "tar:"} {
			if p, ok := strings.CutPrefix(spec.Source, pre); ok {
				ps.source = pre + r.suitePath(p)
			}
		}
		if ps.base == "" {
			ps.base = "auto"
		}
		return ps, nil
	}
	return ps, r.prepareFixture(ctx, ps)
}

// suitePath resolves a path relative to the suite file's directory.
func (r *runner) suitePath(p string) string {
	if filepath.IsAbs(p) || r.suite.path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(r.suite.path), p)
}

func (r *runner) prepareFixture(ctx context.Context, ps *preparedSource) error {
	rec := r.suite.recipes[ps.spec.Fixture]
	logf := func(format string, args ...any) { r.progressf("experiment:   "+format, args...) }
	tr := rec.root()
	r.progressf("experiment:   fixture %s: root %s (debootstrap %s and its scripts; cached in %s)", ps.spec.Fixture, tr.Key(), rec.Suite, fixture.CacheDir())
	root, err := fixture.BuildRoot(tr, logf)
	if err != nil {
		return fmt.Errorf("building fixture %s: %w", ps.spec.Fixture, err)
	}
	ps.root = root
	if ps.base == "" {
		if ps.base, err = r.engineBase(ctx, rec, logf); err != nil {
			return err
		}
	}
	switch ps.spec.Mode {
	case "agent":
		return r.serveAgent(ps)
	case "boot":
		return r.boot(ctx, ps, rec)
	}
	ps.source = "dir:" + root
	return nil
}

// engineBase makes sure the engine holds the fixture's base, a minbase root of its release,
// and returns its reference. The import is redone only when the root's recipe changed.
func (r *runner) engineBase(ctx context.Context, rec Recipe, logf func(string, ...any)) (string, error) {
	br := rec.base()
	root, err := fixture.BuildRoot(br, logf)
	if err != nil {
		return "", fmt.Errorf("building the base root of %s: %w", rec.Suite, err)
	}
	tag := baseTag + ":" + rec.Suite
	out, _ := exec.CommandContext(ctx, "docker", "image", "inspect", "-f", "{{index .Config.Labels \""+baseKeyLabel+"\"}}", tag).Output()
	if strings.TrimSpace(string(out)) == fixture.RootID(br) {
		return "docker-daemon:" + tag, nil
	}
	logf("importing %s into the Docker engine as %s", root, tag)
	sh := fmt.Sprintf("tar -C %s --numeric-owner --xattrs -cf - . | docker import --change %s - %s",
		shellQuote(root), shellQuote("LABEL "+baseKeyLabel+"="+fixture.RootID(br)), shellQuote(tag))
	if out, err := exec.CommandContext(ctx, "sh", "-c", sh).CombinedOutput(); err != nil {
		return "", fmt.Errorf("importing the base %s into the Docker engine: %w: %s", tag, err, tailbuf.Of(out))
	}
	return "docker-daemon:" + tag, nil
}

// serveAgent serves the fixture's root with the agent (--root) on a free port of 127.0.0.1.
func (r *runner) serveAgent(ps *preparedSource) error {
	bin, err := r.agentBinary()
	if err != nil {
		return err
	}
	tok, tokFile, err := r.newToken(ps.spec.Name)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--root", ps.root, "--listen", "127.0.0.1:0", "--token-file", tokFile, "--quiet")
	proc, err := fixture.StartAgent(cmd, nil, 30*time.Second) // no Pdeathsig: see fixture.Boot
	if proc != nil {
		ps.closers = append(ps.closers, proc.Stop)
	}
	if err != nil {
		return fmt.Errorf("starting the agent on %s: %w", ps.root, err)
	}
	ps.source, ps.opts.Token = proc.Addr, tok
	return nil
}

// newToken makes a random agent token and writes it to a file of the work directory.
func (r *runner) newToken(name string) ([]byte, string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, "", err
	}
	tok := []byte(hex.EncodeToString(b))
	path := filepath.Join(r.work, "token-"+name)
	if err := os.WriteFile(path, append(tok, '\n'), 0o600); err != nil {
		return nil, "", err
	}
	return tok, path, nil
}

// agentBinary finds the static agent: the option (the command line fills it from
// $VM2IMAGE_AGENT), beside the executable, PATH.
func (r *runner) agentBinary() (string, error) {
	if r.opts.AgentBinary != "" {
		return r.opts.AgentBinary, nil
	}
	return FindAgent()
}

// FindAgent looks for the vm2image-agent binary beside the running executable, then on PATH.
func FindAgent() (string, error) {
	return helperbin.Find("vm2image-agent", "agent and boot fixtures run it", "VM2IMAGE_AGENT")
}
