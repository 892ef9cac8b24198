package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRPMDistBuilds builds (or finds) the test RPM distribution and checks the VM's packages
// with the real rpm: the older libfoo with its epoch, the dependency cycle, webd.
func TestRPMDistBuilds(t *testing.T) {
	d := BuildRPMDist(t)
	out, err := exec.Command("rpm", "--root="+d.VM, "--dbpath=/var/lib/rpm", "-qa", "--qf", "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}\n").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm -qa: %v\n%s", err, out)
	}
	for _, want := range []string{"libfoo 2:1.0-1", "app-core 0:1.0-1", "app-plugin 0:1.0-1", "webd 0:1.0-3", "shell 0:1.36.1-1", "filesystem 0:3.18-2"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("the VM lacks %q:\n%s", want, out)
		}
	}
}
