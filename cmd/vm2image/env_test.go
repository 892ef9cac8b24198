package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoEnvironmentUnderPkg: configuration is read in cmd/ only and reaches the libraries in
// Options fields. A non-test file under pkg/ that calls os.Getenv, os.LookupEnv, os.Environ
// (or syscall's) fails this test, whatever name it imports the package under.
func TestNoEnvironmentUnderPkg(t *testing.T) {
	banned := map[string]map[string]bool{
		"os":      {"Getenv": true, "LookupEnv": true, "Environ": true, "ExpandEnv": true},
		"syscall": {"Getenv": true, "Environ": true},
	}
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir("../../pkg", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		n++
		names := map[string]string{} // local name -> import path
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			name := filepath.Base(path)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			names[name] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && banned[names[id.Name]][sel.Sel.Name] {
				t.Errorf("%s: %s.%s: read the environment in cmd/ and pass it in an Options field", fset.Position(sel.Pos()), names[id.Name], sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("parsed only %d files under pkg/: the walk is wrong", n)
	}
}
