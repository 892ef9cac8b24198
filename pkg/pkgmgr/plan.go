package pkgmgr

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
)

// OSInfo is what a plan needs of the VM's os-release: ID, VERSION_ID and the words of ID_LIKE.
type OSInfo struct {
	ID        string   `json:"id"`
	VersionID string   `json:"version_id,omitempty"`
	IDLike    []string `json:"id_like,omitempty"`
}

// PlanOptions choose how a plan installs.
type PlanOptions struct {
	// Recommends says whether the installer follows Recommends (apt) or weak dependencies
	// (dnf, zypper). nil takes the default the VM's configuration sets (see RecommendsDefault
	// and Config). The roots assume exactly the setting the install command uses; installers
	// that cannot be told from their command line (yum, tdnf) or have no such dependencies
	// (apk, pacman) always use false.
	Recommends *bool
	// RemoveExtra also removes the base's packages that the VM lacks, after installing.
	RemoveExtra bool
	// Config holds the VM's configuration files, by absolute path in the VM, read for the
	// installer's defaults when Recommends is nil: the apt.conf files, /etc/dnf/dnf.conf,
	// /etc/zypp/zypp.conf. Absent files mean the installer's built-in defaults.
	Config map[string]string
}

// Plan is how to install a VM's packages into a base root: commands for the builder to run,
// in order, inside the build root. The plan decides; it runs nothing.
type Plan struct {
	Manager Manager `json:"manager"`
	// Frontend is the installer the steps run: apt, dnf, yum, zypper, tdnf, microdnf, apk,
	// pacman.
	Frontend string `json:"frontend"`
	// Recommends is whether the install command follows Recommends; Roots assume the same.
	Recommends bool `json:"recommends"`
	// Roots are the install set's packages named on the install line, as Pins keys: the
	// source components of the condensation of the VM's dependency graph restricted to the
	// install set (every member of a cycle is named), plus every package the base has at
	// another version, since an installer upgrades or downgrades only what it is told to.
	Roots []string `json:"roots"`
	// Pins maps every install-set package to the VM's exact version. The key is the name,
	// "name:arch" for a dpkg package of a foreign architecture or a name the VM has for
	// several architectures, and "key@version" for a further version of the same key (rpm
	// installonly kernels).
	Pins map[string]string `json:"pins"`
	// Steps are the commands to run in order inside the build root.
	Steps []Step `json:"steps"`
	// AutoMark and ManualMark restore the VM's installed-as-dependency and explicitly
	// installed marks (apt-mark, pacman -D, apk world); Steps already hold the commands.
	AutoMark   []string `json:"auto_mark,omitempty"`
	ManualMark []string `json:"manual_mark,omitempty"`
	// RepoFiles are the paths, absolute in the VM, of the repository configuration and keys
	// to carry into the build root before the steps run (RepoConfigPaths); a path ending in
	// "/" is a directory, carried whole.
	RepoFiles []string `json:"repo_files"`
	// WriteFiles are files the builder writes into the build root after the steps, by
	// absolute path (apk: /etc/apk/world, which apk add rewrites with the pins).
	WriteFiles map[string]string `json:"write_files,omitempty"`
	// RootsBefore is the install set's size, RootsAfter the number of names on the install
	// line: the journal's "183 -> 109".
	RootsBefore int `json:"roots_before"`
	RootsAfter  int `json:"roots_after"`
	// Notes say what the plan cannot do (pacman cannot pin versions) or left out.
	Notes []string `json:"notes,omitempty"`

	named  []Package       // the packages on the install line, in Roots order
	native string          // the VM's dpkg architecture
	down   map[string]bool // exactKey of the packages to take back to an older version
}

// Step is one command: an argv, never a shell line.
type Step struct {
	Name      string   `json:"name"`
	Argv      []string `json:"argv"`
	Env       []string `json:"env,omitempty"` // KEY=value, added to the builder's environment
	AllowFail bool     `json:"allow_fail,omitempty"`
}

// ErrManagerMismatch is returned when the VM's and the base's package managers differ.
var ErrManagerMismatch = errors.New("package managers differ")

// NewPlan plans the packages layer: the install set (CompareSets), its roots in the VM's own
// dependency graph, and the commands that install them pinned to the VM's versions, restore
// the VM's marks and, with RemoveExtra, remove what the VM lacks. A nil base is an empty root.
// rpm's gpg-pubkey pseudo-packages are left out (their keys travel in RepoFiles), and so are
// names an installer would misread (a leading '-', whitespace), each with a note.
func NewPlan(vm, base *DB, osr OSInfo, opts PlanOptions) (*Plan, error) {
	if vm == nil {
		return nil, errors.New("planning packages: no VM database")
	}
	m := vm.Manager
	if !knownManager(m) {
		return nil, fmt.Errorf("planning packages: unknown package manager %q", m)
	}
	if base == nil {
		base = &DB{Manager: m}
	}
	if base.Manager != "" && base.Manager != m {
		return nil, fmt.Errorf("planning packages: VM uses %s, base uses %s: %w", m, base.Manager, ErrManagerMismatch)
	}
	sets := CompareSets(vm, base)
	p := &Plan{Manager: m, Frontend: chooseFrontend(m, osr, base), Pins: map[string]string{}, RepoFiles: RepoConfigPaths(m)}
	install := p.usable(sets.Install)
	p.Recommends = p.resolveRecommends(opts)
	if p.Recommends {
		p.noteUnsatisfiedRecommends(vm, base, install)
	}
	keys := p.pin(vm.Packages, install)
	roots := installRoots(vm, base, install, p.Recommends)
	for _, i := range roots {
		p.Roots = append(p.Roots, keys[i])
		p.named = append(p.named, install[i])
	}
	p.RootsBefore, p.RootsAfter = len(install), len(roots)
	auto, manual := restoreMarks(vm, base, install)
	p.Steps = p.steps(vm, base, install, opts.RemoveExtra, auto, manual)
	return p, nil
}

// FollowUp compares the VM's packages with those a build root holds after a plan ran: the
// packages still missing and those at another version (BaseVersion is the built one), and a
// plan that names each of them pinned to the VM's version, without Recommends and without
// refreshing the repository indexes, to run in the same root right after. Packages the
// repository no longer serves stay missing; if the follow-up's install step fails as a whole,
// PerPackage tries each package on its own. pacman cannot pin, so its plan names only the
// missing packages.
func FollowUp(vm, built *DB) (missing []Package, versionDiffers []Change, plan *Plan) {
	return FollowUpWith(vm, built, "")
}

// FollowUpWith is FollowUp with the installer of the first plan (its Frontend): a base without
// an installer gives the built root's packages no say, and the distribution (zypper for SUSE)
// decided the first plan's. "" chooses from the built root's packages as FollowUp does.
func FollowUpWith(vm, built *DB, frontend string) (missing []Package, versionDiffers []Change, plan *Plan) {
	if vm == nil {
		vm = &DB{}
	}
	if built == nil {
		built = &DB{Manager: vm.Manager}
	}
	m := vm.Manager
	pairOf, _ := pairPackages(vm.Packages, built.Packages, m)
	var named []Package
	for i, p := range vm.Packages {
		if !plannable(m, p) {
			continue
		}
		j := pairOf[i]
		switch {
		case j < 0:
			missing = append(missing, p)
			named = append(named, p)
		case CompareVersions(m, p.Version, built.Packages[j].Version) != 0:
			versionDiffers = append(versionDiffers, Change{Name: p.Name, Arch: p.Arch, VMVersion: p.Version, BaseVersion: built.Packages[j].Version})
			if m != Pacman {
				named = append(named, p)
			}
		}
	}
	if frontend == "" {
		frontend = chooseFrontend(m, OSInfo{}, built)
	}
	plan = &Plan{Manager: m, Frontend: frontend, Pins: map[string]string{}, RepoFiles: RepoConfigPaths(m)}
	if m == Pacman && len(versionDiffers) > 0 {
		plan.Notes = append(plan.Notes, fmt.Sprintf("pacman cannot install a given version from a sync repository: %d packages stay at the repository's version", len(versionDiffers)))
	}
	keys := plan.pin(vm.Packages, named)
	plan.Roots, plan.named = keys, named
	plan.RootsBefore, plan.RootsAfter = len(named), len(named)
	auto, manual := restoreMarks(vm, built, named)
	plan.Steps = plan.followUpSteps(vm, built, auto, manual)
	return missing, versionDiffers, plan
}

// PerPackage returns a copy of the plan whose install line is split into one step per named
// package, each allowed to fail: for a follow-up whose batch failed because the repository
// lacks some of its versions.
func (p *Plan) PerPackage() *Plan {
	q := *p
	q.Steps = nil
	split := false
	for _, s := range p.Steps {
		switch {
		case s.Name != stepInstall:
			q.Steps = append(q.Steps, s)
		case !split: // yum's downgrade line is a second install step: both split here
			split = true
			for i, pkg := range p.named {
				for _, o := range p.installSteps([]Package{pkg}, []string{p.Roots[i]}, p.Recommends) {
					o.Name, o.AllowFail = stepInstall+" "+p.Roots[i], true
					q.Steps = append(q.Steps, o)
				}
			}
		}
	}
	return &q
}

// usable drops the packages a plan cannot name (see plannable), with a note.
func (p *Plan) usable(pkgs []Package) []Package {
	var out, keys, bad []string
	var kept []Package
	for _, pkg := range pkgs {
		switch {
		case plannable(p.Manager, pkg):
			kept = append(kept, pkg)
		case isGPGPubkey(p.Manager, pkg):
			keys = append(keys, pkg.Version)
		default:
			bad = append(bad, strconv.Quote(pkg.Name))
		}
	}
	if len(keys) > 0 {
		out = append(out, fmt.Sprintf("%d gpg-pubkey entries left out: their keys travel with the repository configuration", len(keys)))
	}
	if len(bad) > 0 {
		out = append(out, fmt.Sprintf("left out %d packages whose name or version no installer accepts: %s", len(bad), joinNames(bad, 5)))
	}
	p.Notes = append(p.Notes, out...)
	return kept
}

func knownManager(m Manager) bool {
	return m == Dpkg || m == RPM || m == APK || m == Pacman
}

// pin fills p.Pins for pkgs and returns their keys, in order.
func (p *Plan) pin(all, pkgs []Package) []string {
	if p.Manager == Dpkg {
		p.native = dpkgNativeArch(all)
	}
	multi := multiArchNames(all)
	keys := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		k := pinKey(pkg, p.native, multi)
		if _, dup := p.Pins[k]; dup {
			k += "@" + pkg.Version
		}
		p.Pins[k] = pkg.Version
		keys[i] = k
	}
	return keys
}

// restoreMarks returns, as Pins keys, the VM packages whose mark the build root will not have
// by itself: every install-set package whose mark is known, and every other VM package whose
// mark the base records differently (no record counts as explicitly installed, as apt and
// pacman treat it).
func restoreMarks(vm, base *DB, install []Package) (auto, manual []string) {
	inInstall := map[string]bool{}
	for _, p := range install {
		inInstall[p.Name+"\x00"+p.Arch+"\x00"+p.Version] = true
	}
	pairOf, _ := pairPackages(vm.Packages, base.Packages, vm.Manager)
	native := ""
	if vm.Manager == Dpkg {
		native = dpkgNativeArch(vm.Packages)
	}
	multi := multiArchNames(vm.Packages)
	for i, p := range vm.Packages {
		if p.Auto == nil || !plannable(vm.Manager, p) {
			continue
		}
		mark := inInstall[p.Name+"\x00"+p.Arch+"\x00"+p.Version]
		if !mark && pairOf[i] >= 0 {
			b := base.Packages[pairOf[i]]
			mark = (b.Auto != nil && *b.Auto) != *p.Auto
		}
		if !mark {
			continue
		}
		if k := pinKey(p, native, multi); *p.Auto {
			auto = append(auto, k)
		} else {
			manual = append(manual, k)
		}
	}
	sort.Strings(auto)
	sort.Strings(manual)
	return auto, manual
}

// noteUnsatisfiedRecommends warns when install-set packages new to the root recommend
// packages the VM lacks: an installer that follows Recommends installs those too.
func (p *Plan) noteUnsatisfiedRecommends(vm, base *DB, install []Package) {
	idx, baseIdx := newPkgIndex(vm.Packages), newPkgIndex(base.Packages)
	seen := map[string]bool{}
	var lacking []string
	for _, pkg := range install {
		if baseIdx.satisfies(pkg.Name) {
			continue // an upgrade: only newly recommended packages would come
		}
		for _, d := range pkg.Depends {
			if d.Kind != Recommends || len(d.Alts) == 0 || seen[d.Alts[0].Name] {
				continue
			}
			if !slices.ContainsFunc(d.Alts, func(r Relation) bool { return idx.satisfies(r.Name) || baseIdx.satisfies(r.Name) }) {
				seen[d.Alts[0].Name] = true
				lacking = append(lacking, d.Alts[0].Name)
			}
		}
	}
	if len(lacking) > 0 {
		sort.Strings(lacking)
		p.Notes = append(p.Notes, fmt.Sprintf("following Recommends also installs what the VM's packages recommend but the VM lacks (%s), where the repository has it: Extras lists them after the build; plan with Recommends false to avoid them", joinNames(lacking, 5)))
	}
}
