package builder

import (
	"slices"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// Only fetching needs the network. The builder splits every install of apt, dnf, zypper and
// pacman in two: a download-only form of the command fetches the packages with the network
// (apt into the archive cache, dnf, zypper and pacman into their package cache in the build
// root), and the install itself, which runs the packages' scripts, runs in a network namespace
// of its own with only loopback, from what was downloaded:
//
//	apt-get install ...          apt-get install --download-only ...   | apt-get install ...
//	dnf install ...              dnf install --downloadonly ...        | dnf install --cacheonly ...
//	zypper install ...           zypper install --download-only ...    | zypper --no-refresh install ...
//	pacman -S ...                pacman -Sw ...                        | pacman -S ...
//
// Index refreshes (apt-get update, zypper refresh, pacman -Sy) have the network; every other
// step (marks, removals, dpkg --add-architecture) runs without. The same holds from outside
// the root: pkgmgr.OutsideStep points both halves at the same root, so they share its cache.
// yum, tdnf, microdnf and apk still fetch and install in one command and keep the network (the
// sandbox's other walls hold).

// needsNetwork says whether step s (as the plan has it) runs with the host's network.
func needsNetwork(m pkgmgr.Manager, s pkgmgr.Step) bool {
	if _, ok := offlineSplit(m, s); ok {
		return false // only its download half has the network
	}
	a := s.Argv
	switch m {
	case pkgmgr.Dpkg:
		return len(a) >= 2 && a[0] == "apt-get" && a[1] == "update"
	case pkgmgr.RPM:
		if len(a) == 0 {
			return false
		}
		switch a[0] {
		case "rpm":
			return false
		case "zypper":
			return slices.Contains(a, "refresh") || slices.Contains(a, "ref")
		}
		return true // yum, tdnf, microdnf, a dnf that does not install: may fetch
	case pkgmgr.Pacman:
		return len(a) >= 2 && a[0] == "pacman" && a[1] == "-Sy"
	}
	return true // apk
}

// split is an install step in two: download with the network, then install without.
type split struct{ download, install pkgmgr.Step }

// offlineSplit returns the download-only half and the offline half of an install step, for
// the installers that can do it. ok is false for every other step.
func offlineSplit(m pkgmgr.Manager, s pkgmgr.Step) (split, bool) {
	a := s.Argv
	if len(a) < 2 {
		return split{}, false
	}
	d, in := s, s
	d.Name = s.Name + " (download)"
	switch {
	case m == pkgmgr.Dpkg && a[0] == "apt-get" && a[1] == "install":
		d.Argv = slices.Concat(a[:2], []string{"--download-only"}, a[2:])
	case m == pkgmgr.RPM && a[0] == "dnf" && a[1] == "install":
		// dnf keeps what --downloadonly fetched in its cache until the next successful
		// transaction; --cacheonly installs from that cache and the metadata the download
		// fetched, and never asks a repository.
		d.Argv = slices.Concat(a[:2], []string{"--downloadonly"}, a[2:])
		in.Argv = slices.Concat(a[:2], []string{"--cacheonly"}, a[2:])
	case m == pkgmgr.RPM && a[0] == "zypper" && slices.Contains(a, "install"):
		i := slices.Index(a, "install")
		d.Argv = slices.Concat(a[:i+1], []string{"--download-only"}, a[i+1:])
		in.Argv = slices.Concat(a[:i], []string{"--no-refresh"}, a[i:])
	case m == pkgmgr.Pacman && a[0] == "pacman" && a[1] == "-S":
		d.Argv = slices.Concat(a[:1], []string{"-Sw"}, a[2:])
	default:
		return split{}, false
	}
	return split{download: d, install: in}, true
}
