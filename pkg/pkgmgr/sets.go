package pkgmgr

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Change is one package whose version differs between two systems; one of the versions is
// empty when the package is absent from that side.
type Change struct {
	Name        string `json:"name"`
	Arch        string `json:"arch"`
	VMVersion   string `json:"vm_version,omitempty"`
	BaseVersion string `json:"base_version,omitempty"`
}

// Sets is how a VM's installed packages differ from a base image's.
type Sets struct {
	// Install are the VM's packages that the base lacks or has at another version or
	// architecture: what a packages layer must install.
	Install []Package `json:"install"`
	// Remove are the base's packages that the VM lacks (by name and architecture).
	Remove []Package `json:"remove"`
	// Upgrade are the packages of Install that the base has at another version (either
	// direction: the VM's version may be older).
	Upgrade []Change `json:"upgrade"`
	// Same counts the VM's packages that the base has at the same version.
	Same int `json:"same"`
}

// CompareSets compares the VM's packages with the base's by name, architecture and version.
// Architectures match when they are equal or when either is "all" (dpkg) or "noarch" (rpm),
// since a package may change between architecture-specific and architecture-independent from
// one version to the next. Versions are equal when the manager's own comparison says so
// ("1.0" and "1.0-0" are one dpkg version). A nil base is an empty one. Each package pairs
// with at most one on the other side, so a name installed for several architectures (dpkg
// multi-arch, rpm multilib) or at several versions (rpm installonly kernels) pairs correctly.
// The lists keep the databases' order.
func CompareSets(vm, base *DB) Sets {
	var s Sets
	if vm == nil {
		vm = &DB{}
	}
	if base == nil {
		base = &DB{Manager: vm.Manager}
	}
	m := vm.Manager
	pairOf, baseUsed := pairPackages(vm.Packages, base.Packages, m)
	for i, p := range vm.Packages {
		j := pairOf[i]
		switch {
		case j < 0:
			s.Install = append(s.Install, p)
		case CompareVersions(m, p.Version, base.Packages[j].Version) == 0:
			s.Same++
		default:
			s.Install = append(s.Install, p)
			s.Upgrade = append(s.Upgrade, Change{Name: p.Name, Arch: p.Arch, VMVersion: p.Version, BaseVersion: base.Packages[j].Version})
		}
	}
	for j, p := range base.Packages {
		if !baseUsed[j] {
			s.Remove = append(s.Remove, p)
		}
	}
	return s
}

// Extras returns the packages of a built root that neither the VM nor the base has (by name
// and architecture): what installing added beyond the VM, such as Recommends the VM did not
// install or dependencies of a newer version.
func Extras(vm, base, built *DB) []Package {
	var out []Package
	if built == nil {
		return nil
	}
	notVM := CompareSets(vm, built).Remove
	inBase := map[string]bool{}
	if base != nil {
		for _, p := range base.Packages {
			inBase[p.Name+"\x00"+p.Arch] = true
		}
	}
	for _, p := range notVM {
		if !inBase[p.Name+"\x00"+p.Arch] {
			out = append(out, p)
		}
	}
	return out
}

// archMatch reports whether two packages' architectures are the same for pairing.
func archMatch(a, b string) bool {
	return a == b || a == "all" || b == "all" || a == "noarch" || b == "noarch"
}

// pairPackages pairs each package of a with at most one package of b of the same name:
// first the same architecture and version, then the same architecture, then a matching one.
// It returns, for each package of a, the index of its pair in b or -1, and which of b's
// packages are paired.
func pairPackages(a, b []Package, m Manager) ([]int, []bool) {
	byName := make(map[string][]int, len(b))
	for j, p := range b {
		byName[p.Name] = append(byName[p.Name], j)
	}
	pairOf := make([]int, len(a))
	for i := range pairOf {
		pairOf[i] = -1
	}
	used := make([]bool, len(b))
	passes := []func(p, q Package) bool{
		func(p, q Package) bool { return p.Arch == q.Arch && CompareVersions(m, p.Version, q.Version) == 0 },
		func(p, q Package) bool {
			return archMatch(p.Arch, q.Arch) && CompareVersions(m, p.Version, q.Version) == 0
		},
		func(p, q Package) bool { return p.Arch == q.Arch },
		func(p, q Package) bool { return archMatch(p.Arch, q.Arch) },
	}
	for _, match := range passes {
		for i, p := range a {
			if pairOf[i] >= 0 {
				continue
			}
			for _, j := range byName[p.Name] {
				if !used[j] && match(p, b[j]) {
					pairOf[i], used[j] = j, true
					break
				}
			}
		}
	}
	return pairOf, used
}

// SetKey is the content address of a packages layer: the lowercase hex SHA-256 of this text,
// every line ended by "\n":
//
//	vm2image package set v1
//	base BASE
//	manager MANAGER
//	repo REPODIGEST
//	NAME=VERSION/ARCH    (one line per package, sorted bytewise, duplicates once)
//
// base is the base image's digest and repoDigest a digest of the repository configuration
// carried into the build root (see RepoConfigPaths). Whatever else changes what the layer
// holds, such as a Recommends setting forced against the VM's configuration, the caller folds
// into repoDigest. The order of pkgs does not matter. Names, versions and architectures hold
// no whitespace in any of the managers, so the text is unambiguous.
func SetKey(base string, m Manager, pkgs []Package, repoDigest string) string {
	lines := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		lines = append(lines, p.Name+"="+p.Version+"/"+p.Arch)
	}
	sort.Strings(lines)
	h := sha256.New()
	fmt.Fprintf(h, "vm2image package set v1\nbase %s\nmanager %s\nrepo %s\n", base, m, repoDigest)
	prev := ""
	for i, l := range lines {
		if i > 0 && l == prev {
			continue
		}
		h.Write([]byte(l + "\n"))
		prev = l
	}
	return hex.EncodeToString(h.Sum(nil))
}

// pinKey names a package as Plan.Pins does: "name", or "name:arch" when the package is of a
// foreign dpkg architecture or when the database holds its name for several architectures.
func pinKey(p Package, native string, multi map[string]bool) string {
	if multi[p.Name] || (native != "" && p.Arch != native && p.Arch != "all" && p.Arch != "") {
		return p.Name + ":" + p.Arch
	}
	return p.Name
}

// multiArchNames returns the names the database holds for more than one architecture.
func multiArchNames(pkgs []Package) map[string]bool {
	arches := map[string]string{}
	multi := map[string]bool{}
	for _, p := range pkgs {
		if a, ok := arches[p.Name]; ok && a != p.Arch {
			multi[p.Name] = true
		}
		arches[p.Name] = p.Arch
	}
	return multi
}

// dpkgNativeArch returns the VM's native dpkg architecture: dpkg's own, or the most common
// architecture other than "all".
func dpkgNativeArch(pkgs []Package) string {
	count := map[string]int{}
	for _, p := range pkgs {
		if p.Name == "dpkg" && p.Arch != "" && p.Arch != "all" {
			return p.Arch
		}
		if p.Arch != "all" && p.Arch != "" {
			count[p.Arch]++
		}
	}
	best := ""
	for a, n := range count {
		if n > count[best] || (n == count[best] && a < best) {
			best = a
		}
	}
	return best
}

// foreignArches returns the dpkg architectures of the packages other than native and "all",
// sorted.
func foreignArches(pkgs []Package, native string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range pkgs {
		if p.Arch != native && p.Arch != "all" && p.Arch != "" && !seen[p.Arch] {
			seen[p.Arch] = true
			out = append(out, p.Arch)
		}
	}
	sort.Strings(out)
	return out
}

// isGPGPubkey reports rpm's pseudo-packages for imported signing keys, which no repository
// serves: the keys travel with the repository configuration instead.
func isGPGPubkey(m Manager, p Package) bool {
	return m == RPM && p.Name == "gpg-pubkey"
}

// plannable reports whether a plan may name the package on a command line: not a gpg-pubkey,
// and a name and version no manager would refuse to build: non-empty, no whitespace or control
// characters, no leading '-' that an installer would read as an option (a hostile database
// could hold one); and an architecture of letters, digits and "_.+-", not starting with '-':
// it becomes an argument of its own (dpkg --add-architecture ARCH), where
// "--pre-invoke=COMMAND" would be an option dpkg runs.
func plannable(m Manager, p Package) bool {
	if isGPGPubkey(m, p) || p.Name == "" || p.Name[0] == '-' || p.Version == "" || p.Version[0] == '-' || !validArch(p.Arch) {
		return false
	}
	return !strings.ContainsFunc(p.Name+p.Version, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// validArch accepts an architecture name of any manager (amd64, x86_64, noarch, any, all,
// hurd-i386), or none.
func validArch(a string) bool {
	if a == "" {
		return true
	}
	if a[0] == '-' || a[0] == '.' || a[0] == '+' || len(a) > 64 {
		return false
	}
	return !strings.ContainsFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '+' || r == '-')
	})
}

// nameSet returns the names of pkgs for lookups.
func nameSet(pkgs []Package) map[string]bool {
	s := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		s[p.Name] = true
	}
	return s
}

// joinNames is for notes: at most max names, then a count of the rest.
func joinNames(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, " ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], " "), len(names)-max)
}
