package services

import (
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/pkg/procs"
)

// program returns the basename a process is known by: the part before ':' of a rewritten title
// ("nginx: master process ..." is nginx), else argv[0]'s basename, else the executable's or
// comm. A busybox applet is "busybox-APPLET".
func program(p procs.Process) string {
	exe := path.Base(strings.TrimSuffix(p.Exe, " (deleted)"))
	name := ""
	if len(p.Argv) > 0 && p.Argv[0] != "" {
		name = argv0Name(p.Argv[0], p.Exe)
	}
	if name == "" && p.Exe != "" {
		name = exe
	}
	if name == "" || name == "." || name == "/" {
		name = p.Comm
	}
	switch {
	case name == "busybox" && len(p.Argv) > 1:
		return "busybox-" + path.Base(p.Argv[1])
	case exe == "busybox" && name != "busybox":
		return "busybox-" + name
	}
	return name
}

// argv0Name is the basename of argv[0], or the program of a rewritten title "prog: ..." or
// "prog args" (one element with spaces that is not the executable's path).
func argv0Name(a, exe string) string {
	if a == exe {
		return path.Base(a)
	}
	if prog, _, ok := strings.Cut(a, ": "); ok && !strings.Contains(prog, " ") {
		return path.Base(prog)
	}
	if strings.Contains(a, " ") { // "redis-server *:6379"
		a, _, _ = strings.Cut(a, " ")
	}
	return path.Base(a)
}

// interpreters run a script or module that names the service better than the interpreter does.
var interpreters = regexp.MustCompile(`^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node(js)?|php[0-9.]*|java|sh|bash|dash)$`)

// serviceName derives a service's name: the program, or for an interpreter the script, module or
// jar it runs ("python3 -m http.server" is http.server, "java -jar app.jar" is app), made safe
// for file and compose names.
func serviceName(p procs.Process) string {
	name := program(p)
	if interpreters.MatchString(name) {
		if s := scriptName(p.Argv); s != "" {
			name = s
		}
	}
	return sanitize(name)
}

// scriptName finds what an interpreter's argv runs, or "".
func scriptName(argv []string) string {
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch {
		case (a == "-m" || a == "-jar" || a == "-c") && i+1 < len(argv):
			next := argv[i+1]
			if a == "-c" { // a shell line: its first word
				next, _, _ = strings.Cut(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(next), "exec ")), " ")
			}
			return trimExt(path.Base(next))
		case strings.HasPrefix(a, "-"):
			continue
		}
		return trimExt(path.Base(a))
	}
	return ""
}

func trimExt(s string) string {
	for _, ext := range []string{".py", ".pl", ".rb", ".js", ".mjs", ".php", ".jar", ".sh"} {
		if t, ok := strings.CutSuffix(s, ext); ok && t != "" {
			return t
		}
	}
	return s
}

var unsafeRun = regexp.MustCompile(`[^a-z0-9._-]+`)

// sanitize lowercases s and turns every run of other characters into '-'; the result starts
// with a letter or digit and is never empty.
func sanitize(s string) string {
	s = unsafeRun.ReplaceAllString(strings.ToLower(s), "-")
	s = strings.Trim(s, "-._")
	if s == "" {
		return "service"
	}
	return s
}

// dedupe makes names unique in order: the second "app" becomes "app-2", the third "app-3".
func dedupe(names []string) []string {
	used := map[string]bool{}
	count := map[string]int{}
	out := make([]string, len(names))
	for i, n := range names {
		cand := n
		for used[cand] {
			count[n]++
			cand = n + "-" + strconv.Itoa(count[n]+1)
		}
		used[cand] = true
		out[i] = cand
	}
	return out
}
