package convert

import (
	"bytes"
	"io"
	"path"
	"regexp"
	"strconv"
	"sync"
)

// packageCounter returns the writer the packages layer's build sends the package manager's
// output to: it counts packages fetched and configured for the packages phase's progress.
func (r *run) packageCounter() io.Writer {
	return newPkgCounter(func(what string, done, total int) { r.items(PhasePackages, what, done, total) })
}

// pkgCounter counts packages fetched and configured in the output of the packages layer's
// steps, for apt, dnf (and yum), zypper and pacman. The builder starts each step with a line
// "+ COMMAND ARGS": the command chooses the parser of the lines that follow. Counts and totals
// add up across steps (a download step, then an install step; a downgrade after the install).
// It is safe for concurrent use; the cost is a few regular expressions per line of output.
type pkgCounter struct {
	mu        sync.Mutex
	buf       []byte
	apt       aptCounter
	parse     lineParser // of the current step; nil: apt's, or none
	isApt     bool
	step      stepCount
	prevDone  [2]int // what the finished steps counted, per kind
	prevTotal [2]int
	report    func(what string, done, total int)
}

// maxLine bounds a line kept while waiting for its end: a longer one is dropped.
const maxLine = 64 << 10

func newPkgCounter(report func(what string, done, total int)) *pkgCounter {
	c := &pkgCounter{report: report}
	c.apt.report = report
	return c
}

// The kinds of things counted.
const (
	kindFetched = iota
	kindConfigured
)

var kindNames = [2]string{ItemsFetched, ItemsConfigured}

// pkgEvent is what a line says: a package fetched or configured (n: the step's total when the
// line says "i/n"), or the step's number of packages (a summary line).
type pkgEvent struct {
	kind    int // kindFetched, kindConfigured, or evSummary; evNone: nothing
	n       int
	summary int
}

const (
	evNone    = -1
	evSummary = 2
)

// lineParser reads one line of a step's output.
type lineParser interface {
	line(l []byte) pkgEvent
}

// stepCount is what the current step counted.
type stepCount struct {
	summary int    // packages its summary lines name
	done    [2]int // lines seen, per kind
	total   [2]int // the step's total, per kind (0: unknown)
}

func (c *pkgCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		l := c.buf[:i]
		if j := bytes.LastIndexByte(l, '\r'); j >= 0 { // a redrawn line: its last state
			l = l[j+1:]
		}
		c.line(l)
		c.buf = c.buf[i+1:]
	}
	if len(c.buf) > maxLine {
		c.buf = c.buf[:0]
	}
	return len(p), nil
}

func (c *pkgCounter) line(l []byte) {
	if cmd, ok := bytes.CutPrefix(l, []byte("+ ")); ok {
		c.startStep(cmd)
	}
	if c.isApt {
		c.apt.line(l)
		return
	}
	if c.parse == nil {
		return
	}
	ev := c.parse.line(l)
	switch ev.kind {
	case evSummary:
		c.step.summary += ev.summary
	case kindFetched, kindConfigured:
		c.count(ev)
	}
}

// startStep ends the current step and picks the parser of the next from its command.
func (c *pkgCounter) startStep(cmd []byte) {
	for k := range 2 {
		if c.step.done[k] > 0 {
			c.prevDone[k] += c.step.done[k]
			c.prevTotal[k] += max(c.step.total[k], c.step.done[k])
		}
	}
	c.step = stepCount{}
	name := string(cmd)
	if i := bytes.IndexByte(cmd, ' '); i >= 0 {
		name = string(cmd[:i])
	}
	c.parse, c.isApt = nil, false
	switch path.Base(name) {
	case "apt-get", "apt", "dpkg":
		c.isApt = true
	case "dnf", "yum", "dnf4", "microdnf":
		c.parse = &dnfParser{}
	case "zypper":
		c.parse = &zypperParser{}
	case "pacman":
		c.parse = &pacmanParser{}
	}
}

// count adds a fetched or configured package and reports the figures of its kind.
func (c *pkgCounter) count(ev pkgEvent) {
	k := ev.kind
	s := &c.step
	s.done[k]++
	switch {
	case ev.n > 0:
		s.total[k] = max(s.total[k], ev.n)
	case s.total[k] == 0:
		s.total[k] = s.summary
	}
	done := c.prevDone[k] + s.done[k]
	total := 0
	if s.total[k] > 0 {
		total = c.prevTotal[k] + max(s.total[k], s.done[k])
	}
	c.report(kindNames[k], done, total)
}

// ofN reads the "n" of "i/n", m's second submatch (0 when absent).
func ofN(m [][]byte) int {
	n, _ := strconv.Atoi(string(m[2]))
	return max(n, 0)
}

// dnf (and yum): "Install  4 Packages" (and Upgrade, Downgrade, Reinstall) in the transaction
// summary, download lines "(1/4): app-core-1.0-1.x86_64.rpm  2.3 MB/s | ..." (without the
// count when there is one package), and "  Installing       : libfoo-2:1.1-1.x86_64   1/4" in
// the transaction (its count includes the cleanup of replaced packages: not a total).
type dnfParser struct{}

var (
	dnfSummary   = regexp.MustCompile(`^(?:Install|Upgrade|Downgrade|Reinstall)\s+(\d+) Packages?\s*$`)
	dnfDownload  = regexp.MustCompile(`^(?:\((\d+)/(\d+)\): )?\S+\.rpm\s`)
	dnfConfigure = regexp.MustCompile(`^\s+(?:Installing|Upgrading|Downgrading|Reinstalling)\s+: \S`)
)

func (dnfParser) line(l []byte) pkgEvent {
	if len(l) == 0 { // the literal tests spare most lines the regular expressions
		return pkgEvent{kind: evNone}
	}
	if l[0] == ' ' {
		if bytes.Contains(l, []byte(": ")) && dnfConfigure.Match(l) {
			return pkgEvent{kind: kindConfigured}
		}
		return pkgEvent{kind: evNone}
	}
	if !bytes.Contains(l, []byte(".rpm")) {
		if c := l[0]; c != 'I' && c != 'U' && c != 'D' && c != 'R' {
			return pkgEvent{kind: evNone}
		}
		if m := dnfSummary.FindSubmatch(l); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			return pkgEvent{kind: evSummary, summary: max(n, 0)}
		}
		return pkgEvent{kind: evNone}
	}
	if m := dnfDownload.FindSubmatch(l); m != nil {
		return pkgEvent{kind: kindFetched, n: ofN(m)}
	}
	return pkgEvent{kind: evNone}
}

// zypper: "Retrieving package libfoo-2:1.1-1.x86_64 (1/4), 6.0 KiB ..." and
// "(1/4) Installing: libfoo-2:1.1-1.x86_64 [....done]" both carry the step's count.
type zypperParser struct{}

var (
	zypperFetch     = regexp.MustCompile(`^Retrieving package \S+ \((\d+)/(\d+)\)`)
	zypperConfigure = regexp.MustCompile(`^\((\d+)/(\d+)\) Installing: \S`)
)

func (zypperParser) line(l []byte) pkgEvent {
	if !bytes.HasPrefix(l, []byte("Retrieving package ")) && !bytes.HasPrefix(l, []byte("(")) {
		return pkgEvent{kind: evNone}
	}
	if m := zypperFetch.FindSubmatch(l); m != nil {
		return pkgEvent{kind: kindFetched, n: ofN(m)}
	}
	if m := zypperConfigure.FindSubmatch(l); m != nil {
		return pkgEvent{kind: kindConfigured, n: ofN(m)}
	}
	return pkgEvent{kind: evNone}
}

// pacman: "Packages (3) app-core-1.0-1  libfoo-2:1.0-1  webd-1.0-3" names the step's total;
// after ":: Retrieving packages..." each " app-core-1.0-1-x86_64 downloading..." is a package
// fetched (before it, the databases' own lines); "installing libfoo..." (or upgrading,
// downgrading, reinstalling; on a terminal "(1/3) installing libfoo  [###]") one configured.
type pacmanParser struct{ retrieving bool }

var (
	pacmanSummary   = regexp.MustCompile(`^Packages \((\d+)\) `)
	pacmanFetch     = regexp.MustCompile(`^\s*\S+ downloading\.\.\.`)
	pacmanConfigure = regexp.MustCompile(`^(?:\(\s*(\d+)/(\d+)\) )?(?:installing|upgrading|downgrading|reinstalling) \S`)
)

func (p *pacmanParser) line(l []byte) pkgEvent {
	if !bytes.Contains(l, []byte("ing")) && !bytes.HasPrefix(l, []byte("Packages (")) {
		return pkgEvent{kind: evNone}
	}
	if m := pacmanSummary.FindSubmatch(l); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		return pkgEvent{kind: evSummary, summary: max(n, 0)}
	}
	if bytes.HasPrefix(l, []byte(":: Retrieving packages")) {
		p.retrieving = true
		return pkgEvent{kind: evNone}
	}
	if p.retrieving && pacmanFetch.Match(l) {
		return pkgEvent{kind: kindFetched}
	}
	if m := pacmanConfigure.FindSubmatch(l); m != nil {
		return pkgEvent{kind: kindConfigured, n: ofN(m)}
	}
	return pkgEvent{kind: evNone}
}
