package builder

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// An installer refuses a whole command line when one package on it is unknown (apt-get: "E:
// Version '1.2' for 'x' was not found"; apt-mark: "E: Unable to locate package x"), so one
// package the repository no longer has would lose all the others. retry takes such packages
// off the line and runs it again; an install line whose output names no culprit is split in
// halves, down to single packages.

// specsOf returns the package arguments of step s: those plan.PerPackage gives one install step
// each, and the names of the plan's marks.
func specsOf(p *pkgmgr.Plan, s pkgmgr.Step) []string {
	onLine := map[string]bool{}
	for _, a := range s.Argv[1:] {
		onLine[a] = true
	}
	var specs []string
	seen := map[string]bool{}
	add := func(spec string) {
		if onLine[spec] && !seen[spec] {
			seen[spec] = true
			specs = append(specs, spec)
		}
	}
	if s.Name == stepInstall {
		for _, o := range p.PerPackage().Steps {
			if strings.HasPrefix(o.Name, stepInstall+" ") && len(o.Argv) > 0 {
				add(o.Argv[len(o.Argv)-1])
			}
		}
		return specs
	}
	for _, n := range append(append([]string{}, p.AutoMark...), p.ManualMark...) {
		add(n)
	}
	return specs
}

// maxRetries bounds the halved install lines of a build: a root whose dpkg is broken fails
// every line, and 2n runs of apt-get for n packages would take long for nothing.
const maxRetries = 48

// stepInstall is the name pkgmgr gives the steps that install the named packages.
const stepInstall = "install"

// withSpecs is s with only the package arguments keep, of all those in specs.
func withSpecs(s pkgmgr.Step, specs, keep []string) pkgmgr.Step {
	drop := map[string]bool{}
	for _, x := range specs {
		drop[x] = true
	}
	for _, x := range keep {
		drop[x] = false
	}
	t := s
	t.Argv = nil
	for _, a := range s.Argv {
		if !drop[a] {
			t.Argv = append(t.Argv, a)
		}
	}
	return t
}

// retry handles the failed step s, whose package arguments are specs and whose output was out.
func (b *build) retry(ctx context.Context, s pkgmgr.Step, specs []string, out string) error {
	if len(specs) == 0 {
		b.failed(s.Name, errors.New("failed"), out, !s.AllowFail)
		return nil
	}
	return b.retrySome(ctx, s, specs, specs, out, 0)
}

// retrySome runs s again with the specs keep (a subset of specs) whose last attempt failed
// with output out: without the packages the output names, then, for an install, in halves.
func (b *build) retrySome(ctx context.Context, s pkgmgr.Step, specs, keep []string, out string, depth int) error {
	for tries := 0; tries < 8; tries++ {
		bad := culprits(out, keep)
		if len(bad) == 0 {
			break
		}
		b.notAvailable(s.Name, bad)
		if keep = without(keep, bad); len(keep) == 0 {
			return nil
		}
		o, err := b.step(ctx, withSpecs(s, specs, keep))
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		out = o
	}
	if s.Name != stepInstall || len(keep) == 1 || depth > 16 || b.retries >= maxRetries {
		b.failed(fmt.Sprintf("%s %s", s.Name, joinNames(keep, 10)), errors.New("failed"), out, !s.AllowFail && !notFoundOutput(out))
		return nil
	}
	b.opts.Logf("install of %d packages failed without naming one: trying them in halves", len(keep))
	half := len(keep) / 2
	for _, part := range [][]string{keep[:half], keep[half:]} {
		b.retries++
		o, err := b.step(ctx, withSpecs(s, specs, part))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if err := b.retrySome(ctx, s, specs, part, o, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// notAvailable records packages the package manager does not know. That is no transient error
// (the same repository gives the same answer) unless a repository did not answer.
func (b *build) notAvailable(step string, bad []string) {
	why := "the repository does not have"
	if b.repoDown {
		why = "not available (a repository did not answer):"
	}
	b.addError(fmt.Sprintf("step %q: %s %s", step, why, joinNames(bad, 10)), false)
}

// joinNames joins at most max names, then counts the rest.
func joinNames(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, " ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], " "), len(names)-max)
}

func without(list, drop []string) []string {
	d := map[string]bool{}
	for _, x := range drop {
		d[x] = true
	}
	var out []string
	for _, x := range list {
		if !d[x] {
			out = append(out, x)
		}
	}
	return out
}

// Installer messages naming a package the repository does not have, by frontend (LC_ALL=C).
var notFoundPatterns = []*regexp.Regexp{
	regexp.MustCompile(`E: Version '[^']*' for '([^']+)' was not found`),
	regexp.MustCompile(`E: Unable to locate package (\S+)`),
	regexp.MustCompile(`E: Package '([^']+)' has no installation candidate`),
	regexp.MustCompile(`E: Couldn't find any package by (?:glob|regex) '([^']+)'`),
	regexp.MustCompile(`No match for argument: (\S+)`),                     // dnf, yum
	regexp.MustCompile(`Unable to find a match: (\S+)`),                    // dnf
	regexp.MustCompile(`No provider of '([^']+)' found`),                   // zypper
	regexp.MustCompile(`(?m)^\s+(\S+?)(?:-[0-9]\S*)? \(no such package\)`), // apk
	regexp.MustCompile(`error: target not found: (\S+)`),                   // pacman
}

// notFoundOutput reports whether the output only says packages are unknown (as opposed to a
// download that failed, which may work next time).
func notFoundOutput(out string) bool {
	for _, bad := range []string{"Failed to fetch", "Could not connect", "Temporary failure", "Could not resolve",
		"Connection failed", "Unable to fetch", "Some index files failed"} {
		if strings.Contains(out, bad) {
			return false
		}
	}
	return true
}

// culprits returns the specs of keep that the output names as unavailable. A spec matches a
// named package when it is the name itself, or the name followed by "=" or ":" (a version or
// an architecture).
func culprits(out string, keep []string) []string {
	named := map[string]bool{}
	for _, re := range notFoundPatterns {
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			named[m[1]] = true
		}
	}
	if len(named) == 0 {
		return nil
	}
	var bad []string
	for _, spec := range keep {
		for n := range named {
			if spec == n || strings.HasPrefix(spec, n+"=") || strings.HasPrefix(spec, n+":") {
				bad = append(bad, spec)
				break
			}
		}
	}
	return bad
}
