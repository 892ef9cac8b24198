package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/vm2image/vm2image/pkg/services"
)

// maxEnvFile bounds an EnvironmentFile= the init reads.
const maxEnvFile = 1 << 20

// serviceEnv returns a service's environment: Env, then the assignments of its env files read
// now (inside the container), later ones winning, and PATH when absent.
func serviceEnv(spec services.Service) ([]string, error) {
	env := append([]string(nil), spec.Env...)
	for _, f := range spec.EnvFiles {
		kv, err := readEnvFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) && f.Optional {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading environment file %s: %w", f.Path, err)
		}
		for _, e := range kv {
			k, _, _ := strings.Cut(e, "=")
			env = setEnv(env, k, e)
		}
	}
	return withDefaultPath(env), nil
}

func setEnv(env []string, key, entry string) []string {
	for i, e := range env {
		if strings.HasPrefix(e, key+"=") {
			env[i] = entry
			return env
		}
	}
	return append(env, entry)
}

// readEnvFile reads KEY=VALUE lines as systemd does: '#' and ';' comments, optional
// "export ", values in single or double quotes, a trailing backslash continuing a line.
func readEnvFile(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnvFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxEnvFile {
		return nil, fmt.Errorf("larger than %d bytes", maxEnvFile)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), maxEnvFile+1)
	pending := ""
	for sc.Scan() {
		line := pending + sc.Text()
		if l, ok := strings.CutSuffix(line, "\\"); ok {
			pending = l
			continue
		}
		pending = ""
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			if words, err := services.SplitWords(`"` + v + `"`); err == nil && len(words) == 1 {
				v = words[0]
			}
		}
		out = append(out, k+"="+v)
	}
	return out, sc.Err()
}

// expandArgv expands $NAME and ${NAME} in argv as systemd does: "${NAME}" inside a word is
// replaced in place; a word that is exactly "$NAME" becomes the value split at whitespace
// (nothing when unset); "$$" is a dollar.
func expandArgv(argv, env []string) []string {
	lookup := func(k string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(env[i], k+"="); ok {
				return v
			}
		}
		return ""
	}
	var out []string
	for i, a := range argv {
		if i > 0 && len(a) > 1 && a[0] == '$' && a[1] != '{' && a[1] != '$' && isName(a[1:]) {
			out = append(out, strings.Fields(lookup(a[1:]))...)
			continue
		}
		out = append(out, expandWord(a, lookup))
	}
	return out
}

func expandWord(a string, lookup func(string) string) string {
	var b strings.Builder
	for i := 0; i < len(a); i++ {
		if a[i] != '$' || i+1 >= len(a) {
			b.WriteByte(a[i])
			continue
		}
		switch {
		case a[i+1] == '$':
			b.WriteByte('$')
			i++
		case a[i+1] == '{':
			end := strings.IndexByte(a[i:], '}')
			if end < 0 || !isName(a[i+2:i+end]) {
				b.WriteByte(a[i])
				continue
			}
			b.WriteString(lookup(a[i+2 : i+end]))
			i += end
		default:
			j := i + 1
			for j < len(a) && (a[j] == '_' || a[j] >= 'A' && a[j] <= 'Z' || a[j] >= 'a' && a[j] <= 'z' || a[j] >= '0' && a[j] <= '9' && j > i+1) {
				j++
			}
			if j == i+1 {
				b.WriteByte(a[i])
				continue
			}
			b.WriteString(lookup(a[i+1 : j]))
			i = j - 1
		}
	}
	return b.String()
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
