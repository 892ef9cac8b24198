package builder

import (
	"slices"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// Only fetching needs the network. For apt the builder splits every install: "apt-get
// install --download-only" fetches the packages with the network (into the archive cache), and
// the install itself, which runs the packages' maintainer scripts, runs in a network namespace
// of its own with only loopback. "apt-get update" fetches indexes; every other dpkg step (marks,
// purges, dpkg --add-architecture) runs without. The other installers fetch and install in one
// command: their steps keep the network (the sandbox's other walls still hold).

// needsNetwork says whether step s runs with the host's network.
func needsNetwork(m pkgmgr.Manager, s pkgmgr.Step) bool {
	if m != pkgmgr.Dpkg {
		return true
	}
	return len(s.Argv) >= 2 && s.Argv[0] == "apt-get" && s.Argv[1] == "update"
}

// downloadStep is the download-only form of an apt install step.
func downloadStep(m pkgmgr.Manager, s pkgmgr.Step) (pkgmgr.Step, bool) {
	if m != pkgmgr.Dpkg || len(s.Argv) < 2 || s.Argv[0] != "apt-get" || s.Argv[1] != "install" {
		return pkgmgr.Step{}, false
	}
	d := s
	d.Name = s.Name + " (download)"
	d.Argv = slices.Concat(s.Argv[:2], []string{"--download-only"}, s.Argv[2:])
	return d, true
}
