package archtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/vm2image/vm2image/"

// graph maps a package to its direct imports (non-test files, this GOOS), for the module's
// packages and everything they link.
type graph map[string][]string

// loadGraph runs `go list -deps` over the module once.
func loadGraph(t *testing.T) graph {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}", "./...")
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, imports, ok := strings.Cut(sc.Text(), "|")
		if !ok {
			t.Fatalf("go list printed %q", sc.Text())
		}
		g[path] = strings.Fields(imports)
	}
	if len(g[module+"pkg/proto"]) == 0 && len(g) < 20 {
		t.Fatalf("go list found %d packages: not this module?", len(g))
	}
	return g
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// deps is every package pkg links, itself included, sorted.
func (g graph) deps(pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, i := range g[p] {
			walk(i)
		}
	}
	walk(pkg)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// chain is one import path from pkg to target (pkg first), or nil: what a failure shows.
func (g graph) chain(pkg, target string) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var c []string
			for ; p != ""; p = prev[p] {
				c = append(c, short(p))
			}
			slices.Reverse(c)
			return c
		}
		for _, i := range g[p] {
			if _, ok := prev[i]; !ok {
				prev[i] = p
				queue = append(queue, i)
			}
		}
	}
	return nil
}

// short drops the module prefix, for messages.
func short(p string) string { return strings.TrimPrefix(p, module) }

// own reports whether p is one of the module's packages.
func own(p string) bool { return strings.HasPrefix(p, module) }
