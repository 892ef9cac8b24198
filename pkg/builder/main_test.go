package builder

import (
	"os"
	"testing"

	"github.com/vm2image/vm2image/internal/sandbox"
)

// TestMain lets the test binary serve as the sandbox's init, which the builder starts by
// re-executing the running binary.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
