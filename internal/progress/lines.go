package progress

import (
	"bytes"
	"regexp"
	"strconv"
)

// Lines returns a writer for a command that reports its progress in lines of text: each line
// is a message event in JSON mode (and "[N/M]" in it an items event of what), printed as is in
// Plain and Term modes, and dropped in Quiet mode.
func (d *Display) Lines(phase, what string) *LineWriter {
	return &LineWriter{d: d, phase: phase, what: what}
}

// LineWriter is the io.Writer of Lines.
type LineWriter struct {
	d           *Display
	phase, what string
	buf         []byte
}

var countRE = regexp.MustCompile(`\[(\d+)/(\d+)\]`)

func (l *LineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		l.line(line)
	}
}

func (l *LineWriter) line(s string) {
	d := l.d
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.mode {
	case Plain, Term:
		d.w.Write([]byte(s + "\n"))
	case JSON:
		now := d.now()
		d.emit(Event{Event: "message", Phase: l.phase, Time: now, Text: s})
		if m := countRE.FindStringSubmatch(s); m != nil {
			done, _ := strconv.Atoi(m[1])
			total, _ := strconv.Atoi(m[2])
			d.emit(Event{Event: "items", Phase: l.phase, Time: now, What: l.what, Done: int64(done), Total: int64(total)})
		}
	}
}
