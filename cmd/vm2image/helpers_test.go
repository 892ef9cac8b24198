package main

import (
	"os"
	"testing"

	"github.com/vm2image/vm2image/pkg/source"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func sourceToken(tok []byte) source.Options { return source.Options{Token: tok} }
