package main

import (
	"os"
	"testing"

	"github.com/vm2image/vm2image/internal/sandbox"
)

// TestMain lets the test binary serve as the build sandbox's init: conversions run in-process
// here start their sandboxes by re-executing the running binary.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
