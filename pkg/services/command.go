package services

import (
	"fmt"
	"strconv"
	"strings"
)

// Command is one command line of a unit (ExecStartPre=), as the init runs it.
type Command struct {
	Argv []string `yaml:"argv"`
	// IgnoreFailure ("-" prefix): a non-zero exit does not fail the service.
	IgnoreFailure bool `yaml:"ignore_failure,omitempty"`
	// Privileged ("+" or "!" prefix): runs as root, whatever the service's user.
	Privileged bool `yaml:"privileged,omitempty"`
}

// ParseCommand splits a unit's command line (ExecStart=, ExecStartPre=): the prefixes
// "-", "@", "+", "!", "!!", ":" and then words separated by whitespace, with double and single
// quotes and C escapes (\n, \t, \\, \", \', \xHH, \NNN). With "@" the second word is argv[0]
// and the first the program; the program is kept as argv[0] (the init cannot run a program
// under another argv[0]). Environment references ($X, ${X}) are left for the init to expand.
func ParseCommand(line string) (Command, error) {
	var c Command
	line = strings.TrimSpace(line)
	at := false
prefixes:
	for len(line) > 0 {
		switch line[0] {
		case '-':
			c.IgnoreFailure = true
		case '@':
			at = true
		case '+':
			c.Privileged = true
		case '!':
			if strings.HasPrefix(line, "!!") { // only without ambient capabilities: we have them
				line = line[1:]
			} else {
				c.Privileged = true
			}
		case ':', '|':
		default:
			break prefixes
		}
		line = line[1:]
	}
	words, err := SplitWords(line)
	if err != nil {
		return Command{}, err
	}
	if at && len(words) >= 2 {
		words = append(words[:1], words[2:]...)
	}
	if len(words) > 0 && words[len(words)-1] == ";" { // the old separator of several commands
		words = words[:len(words)-1]
	}
	if len(words) == 0 || words[0] == "" {
		return Command{}, fmt.Errorf("empty command line %q", line)
	}
	c.Argv = words
	return c, nil
}

// SplitWords splits s as systemd splits command lines and Environment= values: words separated
// by whitespace; double or single quotes group; backslash escapes as in C.
func SplitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case ch == '"' || ch == '\'':
			end := i + 1
			for ; end < len(s) && s[end] != ch; end++ {
				if s[end] == '\\' && ch == '"' {
					end++
				}
			}
			if end >= len(s) {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			inner := s[i+1 : end]
			if ch == '"' {
				u, err := unescape(inner)
				if err != nil {
					return nil, err
				}
				inner = u
			}
			cur.WriteString(inner)
			inWord, i = true, end
		case ch == '\\':
			n, r, err := escape(s, i)
			if err != nil {
				return nil, err
			}
			cur.WriteString(r)
			inWord, i = true, i+n-1
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		n, r, err := escape(s, i)
		if err != nil {
			return "", err
		}
		b.WriteString(r)
		i += n - 1
	}
	return b.String(), nil
}

// escape decodes the escape at s[i] ('\\'): it returns its length and what it stands for.
func escape(s string, i int) (int, string, error) {
	if i+1 >= len(s) {
		return 1, "", nil // a trailing backslash: nothing
	}
	simple := map[byte]string{'a': "\a", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t",
		'v': "\v", '\\': "\\", '"': "\"", '\'': "'", 's': " ", ' ': " ", ';': ";"}
	c := s[i+1]
	if r, ok := simple[c]; ok {
		return 2, r, nil
	}
	switch {
	case c == 'x' && i+3 < len(s):
		v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return 0, "", fmt.Errorf("bad escape %q", s[i:i+4])
		}
		return 4, string([]byte{byte(v)}), nil
	case c >= '0' && c <= '7' && i+3 < len(s):
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return 0, "", fmt.Errorf("bad escape %q", s[i:i+4])
		}
		return 4, string([]byte{byte(v)}), nil
	}
	return 0, "", fmt.Errorf("bad escape \\%c in %q", c, s)
}

// Specifiers are the values ExpandSpecifiers substitutes besides the unit's own names.
type Specifiers struct {
	User string // %u
	Home string // %h
}

// ExpandSpecifiers replaces a unit's specifiers in s: %n %N %p %i %I %j %J (names), %t %S %C
// %L %E %T %V (directories), %u %h (the service's user and home when known), %%. Unknown
// specifiers are errors.
func ExpandSpecifiers(s, unit string, sp Specifiers) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	full := unit
	noSuffix := unit
	if dot := strings.LastIndexByte(unit, '.'); dot >= 0 {
		noSuffix = unit[:dot]
	}
	prefix, inst, _ := strings.Cut(noSuffix, "@")
	vals := map[byte]string{'n': full, 'N': noSuffix, 'p': prefix, 'i': inst, 'I': unescapeUnit(inst),
		'j': lastDash(prefix), 'J': unescapeUnit(lastDash(prefix)), 't': "/run", 'S': "/var/lib",
		'C': "/var/cache", 'L': "/var/log", 'E': "/etc", 'T': "/tmp", 'V': "/var/tmp", '%': "%",
		'u': sp.User, 'h': sp.Home}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("a lone %% at the end of %q", s)
		}
		v, ok := vals[s[i+1]]
		if !ok || v == "" && (s[i+1] == 'u' || s[i+1] == 'h') {
			return "", fmt.Errorf("specifier %%%c in %q is not supported", s[i+1], s)
		}
		b.WriteString(v)
		i++
	}
	return b.String(), nil
}

func lastDash(s string) string {
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// unescapeUnit undoes systemd-escape: "-" is "/", "\xHH" a byte.
func unescapeUnit(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '-':
			b.WriteByte('/')
		case s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x':
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
