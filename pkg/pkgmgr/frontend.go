package pkgmgr

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The installers a plan's steps run.
const (
	feApt      = "apt"
	feDnf      = "dnf"
	feYum      = "yum"
	feZypper   = "zypper"
	feTdnf     = "tdnf"
	feMicrodnf = "microdnf"
	feAPK      = "apk"
	fePacman   = "pacman"
)

// stepInstall names the steps that install the named packages.
const stepInstall = "install"

// aptEnv keeps apt and dpkg from asking questions.
var aptEnv = []string{"DEBIAN_FRONTEND=noninteractive"}

// rpmFrontends lists the installers by the package that ships them, in order of preference.
var rpmFrontends = []struct{ pkg, fe string }{
	{"zypper", feZypper}, {"dnf", feDnf}, {"dnf5", feDnf}, {"yum", feYum}, {"tdnf", feTdnf}, {"microdnf", feMicrodnf},
}

// chooseFrontend picks the installer for m. For rpm it is the one the base root ships (the
// steps run there); without one, the distribution decides: SUSE zypper, CentOS/RHEL 7 and
// Amazon Linux 2 yum, the rest dnf.
func chooseFrontend(m Manager, osr OSInfo, base *DB) string {
	switch m {
	case Dpkg:
		return feApt
	case APK:
		return feAPK
	case Pacman:
		return fePacman
	}
	if base != nil {
		have := nameSet(base.Packages)
		for _, f := range rpmFrontends {
			if have[f.pkg] {
				return f.fe
			}
		}
	}
	ids := append([]string{osr.ID}, osr.IDLike...)
	major, _ := strconv.Atoi(strings.SplitN(osr.VersionID, ".", 2)[0])
	for _, id := range ids {
		switch {
		case strings.Contains(id, "suse") || id == "sles" || id == "sled":
			return feZypper
		case id == "amzn" && osr.VersionID == "2":
			return feYum
		case (id == "centos" || id == "rhel" || id == "ol" || id == "scientific") && major > 0 && major < 8:
			return feYum
		}
	}
	return feDnf
}

// followsRecommends reports whether an installer can follow Recommends, set from its command
// line.
func followsRecommends(fe string) bool {
	return fe == feApt || fe == feDnf || fe == feZypper || fe == feMicrodnf
}

// resolveRecommends settles whether the install command follows Recommends.
func (p *Plan) resolveRecommends(opts PlanOptions) bool {
	if !followsRecommends(p.Frontend) {
		if opts.Recommends != nil && *opts.Recommends {
			p.Notes = append(p.Notes, p.Frontend+" does not follow Recommends from its command line: planned without them")
		}
		return false
	}
	if opts.Recommends != nil {
		return *opts.Recommends
	}
	return recommendsDefault(p.Frontend, opts.Config)
}

// steps assembles the plan's commands: prepare, install the roots, remove, restore marks.
func (p *Plan) steps(vm, base *DB, install []Package, removeExtra bool, auto, manual []string) []Step {
	p.downgrades(install, base)
	var s []Step
	if len(p.named) > 0 {
		s = append(p.prepareSteps(install), p.installSteps(p.named, p.Roots, p.Recommends)...)
	}
	if removeExtra {
		s = append(s, p.removeSteps(CompareSets(vm, base).Remove)...)
	}
	return append(s, p.markSteps(vm, auto, manual)...)
}

// followUpSteps are a follow-up's commands: the indexes are fresh, Recommends are off since
// every package is named.
func (p *Plan) followUpSteps(vm, built *DB, auto, manual []string) []Step {
	p.downgrades(p.named, built)
	p.Recommends = false
	return append(p.installSteps(p.named, p.Roots, false), p.markSteps(vm, auto, manual)...)
}

// downgrades records which packages the installer must take back to an older version (yum
// needs its own command for them).
func (p *Plan) downgrades(pkgs []Package, base *DB) {
	p.down = map[string]bool{}
	pairOf, _ := pairPackages(pkgs, base.Packages, p.Manager)
	for i, pkg := range pkgs {
		if j := pairOf[i]; j >= 0 && CompareVersions(p.Manager, pkg.Version, base.Packages[j].Version) < 0 {
			p.down[exactKey(pkg)] = true
		}
	}
}

// prepareSteps enable foreign architectures and refresh the repository indexes where the
// installer does not do it by itself.
func (p *Plan) prepareSteps(install []Package) []Step {
	switch p.Frontend {
	case feApt:
		var s []Step
		for _, a := range foreignArches(install, p.native) {
			s = append(s, Step{Name: "add architecture " + a, Argv: []string{"dpkg", "--add-architecture", a}, Env: aptEnv})
		}
		return append(s, Step{Name: "update indexes", Argv: []string{"apt-get", "update"}, Env: aptEnv})
	case feZypper:
		return []Step{{Name: "refresh repositories", Argv: []string{"zypper", "--non-interactive", "refresh"}}}
	case fePacman:
		p.Notes = append(p.Notes, "pacman cannot install a given version from a sync repository: packages come at the repository's current version (pinning through the archive's URL is out of scope); Pins keep the VM's versions and FollowUp reports the differences")
		return []Step{{Name: "sync databases", Argv: []string{"pacman", "-Sy", "--noconfirm"}}}
	}
	return nil
}

// installSteps name pkgs (whose Pins keys are keys) on the installer's command line.
func (p *Plan) installSteps(pkgs []Package, keys []string, recommends bool) []Step {
	if len(pkgs) == 0 {
		return nil
	}
	var specs, down []string
	for i, pkg := range pkgs {
		spec := p.spec(pkg, keys[i])
		if p.Frontend == feYum && p.down[exactKey(pkg)] {
			down = append(down, spec)
			continue
		}
		specs = append(specs, spec)
	}
	var argv []string
	var env []string
	switch p.Frontend {
	case feApt:
		flag := "--no-install-recommends"
		if recommends {
			flag = "--install-recommends"
		}
		// Upgrade-By-Source-Package=false: naming a package must not upgrade the installed
		// packages built from the same source (apt 2.x does that by default).
		argv = []string{"apt-get", "install", "-y", "--allow-downgrades", flag,
			"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
			"-o", "APT::Get::Upgrade-By-Source-Package=false"}
		env = aptEnv
	case feDnf, feMicrodnf:
		argv = []string{p.Frontend, "install", "-y", "--setopt=install_weak_deps=" + map[bool]string{true: "True", false: "False"}[recommends]}
		if p.Frontend == feDnf {
			argv = append(argv, "--allowerasing")
		}
	case feTdnf, feYum:
		argv = []string{p.Frontend, "install", "-y"}
	case feZypper:
		flag := "--no-recommends"
		if recommends {
			flag = "--recommends"
		}
		argv = []string{"zypper", "--non-interactive", "install", "--oldpackage", "--auto-agree-with-licenses", flag}
	case feAPK:
		argv = []string{"apk", "add", "--no-cache"}
	case fePacman:
		argv = []string{"pacman", "-S", "--noconfirm", "--needed"}
	}
	var s []Step
	if len(specs) > 0 {
		s = append(s, Step{Name: stepInstall, Argv: append(argv, specs...), Env: env})
	}
	if len(down) > 0 {
		s = append(s, Step{Name: stepInstall, Argv: append([]string{"yum", "downgrade", "-y"}, down...)})
	}
	return s
}

// spec names one package pinned to its version, in the installer's syntax.
func (p *Plan) spec(pkg Package, key string) string {
	evr := pkg.UpstreamVersion
	if pkg.Release != "" {
		evr += "-" + pkg.Release
	}
	if pkg.Epoch > 0 {
		evr = strconv.Itoa(pkg.Epoch) + ":" + evr
	}
	key, _, _ = strings.Cut(key, "@")
	switch p.Frontend {
	case feApt:
		return key + "=" + pkg.Version
	case feZypper:
		return pkg.Name + "." + pkg.Arch + "=" + evr
	case feAPK:
		return pkg.Name + "=" + pkg.Version
	case fePacman:
		return pkg.Name
	}
	return pkg.Name + "-" + evr + "." + pkg.Arch // dnf, yum, tdnf, microdnf: NEVRA
}

// removeSteps remove exactly the given packages, whatever depends on them: the VM has none of
// them, so nothing the VM has needs them.
func (p *Plan) removeSteps(pkgs []Package) []Step {
	var names []string
	for _, pkg := range pkgs {
		if !plannable(p.Manager, pkg) {
			continue
		}
		switch p.Manager {
		case Dpkg:
			names = append(names, pkg.Name+":"+pkg.Arch)
		case RPM:
			names = append(names, pkg.Name+"-"+pkg.UpstreamVersion+"-"+pkg.Release+"."+pkg.Arch)
		default:
			names = append(names, pkg.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	var argv []string
	var env []string
	switch p.Manager {
	case Dpkg:
		argv, env = []string{"dpkg", "--purge", "--force-depends", "--force-remove-essential"}, aptEnv
	case RPM:
		argv = []string{"rpm", "-e", "--nodeps"}
	case APK:
		argv = []string{"apk", "del", "--no-cache"}
	case Pacman:
		argv = []string{"pacman", "-Rdd", "--noconfirm"}
	}
	return []Step{{Name: "remove packages the VM lacks", Argv: append(argv, names...), Env: env, AllowFail: true}}
}

// markSteps restore the VM's marks. apk keeps them in its world file, which the plan writes
// whole; rpm records none.
func (p *Plan) markSteps(vm *DB, auto, manual []string) []Step {
	var cmdAuto, cmdManual []string
	var env []string
	switch p.Manager {
	case Dpkg:
		cmdAuto, cmdManual, env = []string{"apt-mark", "auto"}, []string{"apt-mark", "manual"}, aptEnv
	case Pacman:
		cmdAuto, cmdManual = []string{"pacman", "-D", "--asdeps"}, []string{"pacman", "-D", "--asexplicit"}
	case APK:
		p.writeAPKWorld(vm)
		return nil
	default:
		return nil
	}
	p.AutoMark, p.ManualMark = auto, manual
	var s []Step
	if len(auto) > 0 {
		s = append(s, Step{Name: "mark installed as dependencies", Argv: append(cmdAuto, auto...), Env: env, AllowFail: true})
	}
	if len(manual) > 0 {
		s = append(s, Step{Name: "mark installed explicitly", Argv: append(cmdManual, manual...), Env: env, AllowFail: true})
	}
	return s
}

// writeAPKWorld plans /etc/apk/world as the VM's: the names of its explicitly installed
// packages. The database keeps no version constraints or repository tags of world entries;
// the VM's own world file, with them, comes in the filesystem diff.
func (p *Plan) writeAPKWorld(vm *DB) {
	var world []string
	known := false
	for _, pkg := range vm.Packages {
		if pkg.Auto != nil {
			known = true
			if !*pkg.Auto {
				world = append(world, pkg.Name)
			}
		}
	}
	if !known {
		p.Notes = append(p.Notes, "the VM has no /etc/apk/world: apk add leaves the pins in the build root's world")
		return
	}
	sort.Strings(world)
	p.ManualMark = world
	p.WriteFiles = map[string]string{"/" + apkWorldPath: strings.Join(world, "\n") + "\n"}
	if len(world) == 0 {
		p.WriteFiles["/"+apkWorldPath] = ""
	}
}

// String renders the steps as a reader would type them, for logs and reports.
func (s Step) String() string {
	q := make([]string, len(s.Argv))
	for i, a := range s.Argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;~#") {
			a = strconv.Quote(a)
		}
		q[i] = a
	}
	line := strings.Join(q, " ")
	if len(s.Env) > 0 {
		line = strings.Join(s.Env, " ") + " " + line
	}
	if s.AllowFail {
		line += fmt.Sprintf("  # %s, may fail", s.Name)
	}
	return line
}
