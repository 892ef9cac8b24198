package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BaseTag is the Docker engine image the integration tests use as Debian's base image: a
// debootstrap minbase bookworm root imported with `docker import` (no Docker Hub here).
const BaseTag = "vm2image-test/debian:bookworm"

// RootKeyLabel records which debootstrap root BaseTag was imported from.
const RootKeyLabel = "vm2image.test.root-key"

// Bookworm is the base recipe: debootstrap minbase bookworm.
var Bookworm = Recipe{Suite: "bookworm"}

var importMu sync.Mutex

// EngineBase makes sure BaseTag in the engine holds the current Bookworm root and returns the
// tag. The import is redone when the root was rebuilt (RootID changed).
func EngineBase(t testing.TB) string {
	t.Helper()
	RequireDocker(t)
	root := Root(t, Bookworm)
	importMu.Lock()
	defer importMu.Unlock()
	out, _ := exec.Command("docker", "image", "inspect", "-f", "{{index .Config.Labels \""+RootKeyLabel+"\"}}", BaseTag).Output()
	if strings.TrimSpace(string(out)) == RootID(Bookworm) {
		return BaseTag
	}
	sh := fmt.Sprintf("tar -C %q --numeric-owner --xattrs -cf - . | docker import --change 'LABEL %s=%s' - %s",
		root, RootKeyLabel, RootID(Bookworm), BaseTag)
	if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	return BaseTag
}

// Registry runs Debian's docker-registry on a free port of 127.0.0.1 for the test and returns
// its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	RequireCommands(t, "docker-registry")
	store := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(store, "data"), addr)
	cfgPath := filepath.Join(store, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfgPath)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not start: %v\n%s", addr, err, logs.String())
		}
	}
}

// InitBinary builds the static vm2image-init once per test process and returns its path.
func InitBinary(t testing.TB) string {
	t.Helper()
	initOnce.Do(func() {
		initPath, initErr = buildStatic("vm2image-init", "github.com/vm2image/vm2image/cmd/vm2image-init")
	})
	if initErr != nil {
		t.Fatal(initErr)
	}
	return initPath
}

var (
	initOnce sync.Once
	initPath string
	initErr  error
)

// buildStatic builds a static binary of pkg into a new temporary directory.
func buildStatic(name, pkg string) (string, error) {
	dir, err := os.MkdirTemp("", "vm2image-bin-")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", name, err, b)
	}
	return out, nil
}
