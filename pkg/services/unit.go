package services

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// MaxUnitFile bounds one unit file or drop-in that ParseUnit reads.
const MaxUnitFile = 1 << 20

// Unit is a systemd unit: its fragment and drop-ins merged in order. Assignments keep their
// order; an empty assignment resets a list (ExecStartPre=, Environment=, ...).
type Unit struct {
	Name string // "nginx.service", "postgresql@15-main.service"
	// Files are the fragment then the drop-ins, as read.
	Files   []string
	entries []unitEntry
}

type unitEntry struct {
	section, key, value string
}

// ErrMasked marks a unit linked to /dev/null.
var ErrMasked = errors.New("unit is masked")

// ErrNoUnit marks a unit with no fragment in the search path.
var ErrNoUnit = errors.New("no such unit")

// ParseUnit adds the assignments of one unit file to u: sections ("[Service]"), "Key=Value"
// lines with whitespace trimmed, comments ('#' or ';' first), and continuation lines (a
// trailing backslash joins the next line with a space; comment lines inside are skipped).
// Lines without '=' outside comments are errors naming the line.
func (u *Unit) ParseUnit(name string, b []byte) error {
	if len(b) > MaxUnitFile {
		return fmt.Errorf("parsing %s: larger than %d bytes", name, MaxUnitFile)
	}
	u.Files = append(u.Files, name)
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), MaxUnitFile+1)
	lineNo := 0
	var cont strings.Builder
	inCont := false
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if inCont && (strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";")) {
			continue
		}
		if !inCont && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			cont.WriteString(l)
			cont.WriteByte(' ')
			inCont = true
			continue
		}
		if inCont {
			cont.WriteString(line)
			line, inCont = cont.String(), false
			cont.Reset()
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return fmt.Errorf("parsing %s: line %d: bad section header %q", name, lineNo, line)
			}
			section = line[1 : len(line)-1]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("parsing %s: line %d: want KEY=VALUE, got %q", name, lineNo, line)
		}
		if section == "" {
			return fmt.Errorf("parsing %s: line %d: assignment outside a section", name, lineNo)
		}
		u.entries = append(u.entries, unitEntry{section, strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("parsing %s: %w", name, err)
	}
	if inCont {
		u.entries = appendCont(u.entries, section, strings.TrimSpace(cont.String()))
	}
	return nil
}

func appendCont(es []unitEntry, section, line string) []unitEntry {
	if k, v, ok := strings.Cut(line, "="); ok && section != "" {
		es = append(es, unitEntry{section, strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return es
}

// Values returns every value of key in section in order, starting after the last empty
// assignment (which resets the list).
func (u *Unit) Values(section, key string) []string {
	var out []string
	for _, e := range u.entries {
		if e.section != section || e.key != key {
			continue
		}
		if e.value == "" {
			out = nil
			continue
		}
		out = append(out, e.value)
	}
	return out
}

// Value returns the last value of key in section ("" when unset or reset).
func (u *Unit) Value(section, key string) string {
	v := ""
	for _, e := range u.entries {
		if e.section == section && e.key == key {
			v = e.value
		}
	}
	return v
}

// Has reports whether key is assigned in section.
func (u *Unit) Has(section, key string) bool {
	for _, e := range u.entries {
		if e.section == section && e.key == key {
			return true
		}
	}
	return false
}

// Keys returns the keys assigned in section, first assignment order, unique.
func (u *Unit) Keys(section string) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range u.entries {
		if e.section == section && !seen[e.key] {
			seen[e.key] = true
			out = append(out, e.key)
		}
	}
	return out
}
