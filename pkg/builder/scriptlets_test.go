package builder

import (
	"strings"
	"testing"
)

// TestCheckScriptlets: pacman's real output for a package whose pre_install fails (exit 0,
// the package installed) becomes a report line naming the package and what it said; output
// without the failure adds nothing.
func TestCheckScriptlets(t *testing.T) {
	b := &build{opts: Options{Logf: t.Logf}, res: &Result{}}
	b.checkScriptlets("install", "checking for file conflicts...\n:: Processing package changes...\ninstalling filesystem...\n"+
		"installing badpre...\nbadpre: refusing to install\nerror: command failed to execute correctly\ninstalling webd...\n")
	if len(b.res.Errors) != 1 || !strings.HasSuffix(b.res.Errors[0],
		"a package scriptlet failed (the package is installed all the same): installing badpre...; badpre: refusing to install; error: command failed to execute correctly") {
		t.Errorf("errors %q", b.res.Errors)
	}
	if b.transient {
		t.Error("a failing scriptlet is marked transient: the same repository fails the same way next time")
	}
	b.res.Errors = nil
	b.checkScriptlets("install", "installing webd...\nerror: could not set install reason for package orphan\n")
	if len(b.res.Errors) != 0 {
		t.Errorf("errors %q for output without a failing scriptlet", b.res.Errors)
	}
}
