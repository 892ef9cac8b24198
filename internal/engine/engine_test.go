package engine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectNoEngine: with DOCKER_HOST at a socket nobody listens on, Connect fails and
// names the address it tried (the ping is what fails, not the client's construction).
func TestConnectNoEngine(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "no-engine.sock")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	c, err := Connect(context.Background())
	if err == nil {
		c.Close()
		t.Fatal("connected to a socket nobody listens on")
	}
	if !strings.Contains(err.Error(), "connecting to the docker engine at unix://"+sock) {
		t.Errorf("error %q does not name the engine's address", err)
	}
}
