package pkgmgr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// debField is one field of a deb822 paragraph: the text after the colon on
// the field's first line, and its continuation lines.
type debField struct {
	name  string
	value string   // first line, trimmed
	more  []string // continuation lines, trimmed
	line  int
}

// full returns the field's first line and continuation lines joined by
// newlines.
func (f debField) full() string {
	if len(f.more) == 0 {
		return f.value
	}
	return f.value + "\n" + strings.Join(f.more, "\n")
}

// debParagraph is one paragraph (stanza) of a deb822 file.
type debParagraph struct {
	line   int // line of the first field
	fields []debField
	index  map[string]int // lower-case field name -> position in fields
}

// get returns a field by name, ignoring case as dpkg does.
func (p *debParagraph) get(name string) (debField, bool) {
	i, ok := p.index[strings.ToLower(name)]
	if !ok {
		return debField{}, false
	}
	return p.fields[i], true
}

func (p *debParagraph) add(f debField) error {
	key := strings.ToLower(f.name)
	if _, dup := p.index[key]; dup {
		return fmt.Errorf("duplicate field %q", f.name)
	}
	if p.index == nil {
		p.index = make(map[string]int)
		p.line = f.line
	}
	p.index[key] = len(p.fields)
	p.fields = append(p.fields, f)
	return nil
}

// readDeb822 parses paragraphs separated by blank lines (or lines of blanks),
// calling fn for each. Errors are ParseErrors carrying a line number.
func readDeb822(r io.Reader, maxLine int, maxFile int64, fn func(*debParagraph) error) error {
	lr := newLineReader(r, maxLine, maxFile)
	cur := &debParagraph{}
	flush := func() error {
		if len(cur.fields) == 0 {
			return nil
		}
		p := cur
		cur = &debParagraph{}
		return fn(p)
	}
	for {
		b, err := lr.next()
		if err == io.EOF {
			return flush()
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if b[0] == ' ' || b[0] == '\t' {
			if len(cur.fields) == 0 {
				return lr.errorf("continuation line outside a field")
			}
			f := &cur.fields[len(cur.fields)-1]
			f.more = append(f.more, string(bytes.TrimSpace(b)))
			continue
		}
		f, err := parseDebFieldLine(b)
		if err != nil {
			return lr.errorf("%w", err)
		}
		f.line = lr.line
		if err := cur.add(f); err != nil {
			return lr.errorf("%w", err)
		}
	}
}

func parseDebFieldLine(b []byte) (debField, error) {
	name, value, ok := bytes.Cut(b, []byte(":"))
	if !ok {
		return debField{}, fmt.Errorf("line is neither a field nor a continuation: %q", clip(b))
	}
	if len(name) == 0 || bytes.ContainsAny(name, " \t") {
		return debField{}, fmt.Errorf("invalid field name %q", clip(name))
	}
	return debField{name: string(name), value: string(bytes.TrimSpace(value))}, nil
}

// clip shortens b for an error message.
func clip(b []byte) string {
	const n = 60
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// fieldError returns a ParseError at the line of f.
func fieldError(f debField, err error) error {
	return errorAt(f.line, fmt.Errorf("field %s: %w", f.name, err))
}

var errMissingField = errors.New("missing field")
