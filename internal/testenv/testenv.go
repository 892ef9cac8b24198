package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireIntegrationEnv is the variable CI sets: an integration test that would skip fails instead.
const RequireIntegrationEnv = "VM2IMAGE_REQUIRE_INTEGRATION"

// Strict reports whether skipping integration tests is forbidden.
func Strict() bool { return os.Getenv(RequireIntegrationEnv) == "1" }

// Skip skips the test with reason, or fails it when integration tests are required.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("%s=1 but this integration test cannot run: %s", RequireIntegrationEnv, reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or fails, under CI) when the test does not run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (mounts, chroot, device nodes, ownership)")
	}
}

// RequireCommands skips (or fails, under CI) when one of the commands is not on PATH.
func RequireCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			Skip(t, n+" is not installed (make test runs scripts/setup.sh, which installs it)")
		}
	}
}

// RequireDocker skips (or fails, under CI) when no Docker engine answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	RequireCommands(t, "docker")
	if err := exec.Command("docker", "version").Run(); err != nil {
		Skip(t, "no Docker engine answers (make test starts dockerd through scripts/setup.sh)")
	}
}

// Short skips heavy tests under -short; -short is a developer's choice, so it never fails.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() && !Strict() {
		t.Skip("heavy integration test skipped under -short")
	}
}
