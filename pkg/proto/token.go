package proto

import (
	"fmt"
	"os"
	"strings"
)

// ReadTokenFile reads a shared token from a file: its first line, surrounding spaces trimmed.
func ReadTokenFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading token file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", path)
	}
	return []byte(tok), nil
}
