package fleet

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// DefaultMaxLayers is how many layers an image may have: overlayfs stacks about 128 lower
// directories and Docker refuses more than about 125, so stay well below.
const DefaultMaxLayers = 100

// PackageKey names a package's payload: the same (manager, name, version, arch) ships the same
// files in every VM, so its layer can be the same blob in every image.
type PackageKey struct {
	Manager pkgmgr.Manager `json:"manager"`
	Name    string         `json:"name"`
	Version string         `json:"version"`
	Arch    string         `json:"arch"`
}

func (k PackageKey) String() string {
	return fmt.Sprintf("%s %s %s (%s)", k.Manager, k.Name, k.Version, k.Arch)
}

// ImagePackages are the packages one VM's image installs over its base.
type ImagePackages struct {
	Name     string
	Packages map[PackageKey]int64 // installed size in bytes
}

// LayerPlan is the package-grained layering of a fleet: the payloads popular and large enough to
// be their own layers, shared by digest across images; per image, the rest in one bundle layer.
type LayerPlan struct {
	MaxLayers int          `json:"max_layers"`
	Own       []OwnLayer   `json:"own_layers"`
	Images    []ImagePlan  `json:"images"`
	Stored    StoredFigure `json:"stored_bytes"`
}

// OwnLayer is a payload with a layer of its own and the images that use it.
type OwnLayer struct {
	Package PackageKey `json:"package"`
	Bytes   int64      `json:"bytes"`
	Images  []string   `json:"images"`
}

// ImagePlan is one image's share of the plan.
type ImagePlan struct {
	Name        string `json:"name"`
	OwnLayers   int    `json:"own_layers"`
	Bundled     int    `json:"bundled_packages"` // packages in its bundle layer
	BundleBytes int64  `json:"bundle_bytes"`
	Layers      int    `json:"package_layers"` // own layers + the bundle (when not empty)
}

// StoredFigure is what a registry stores of the fleet's package payloads (uncompressed bytes),
// per strategy: one packages layer per image; one per distinct install set; package-grained.
type StoredFigure struct {
	PerImage       int64 `json:"per_image"`
	PerInstallSet  int64 `json:"per_install_set"`
	PackageGrained int64 `json:"package_grained"`
	Floor          int64 `json:"floor"` // every distinct payload once
}

// PlanLayers chooses which payloads get their own layers. A payload's value is the bytes its
// own layer saves the registry: its size times the images that share it, less one copy; the most
// valuable come first (ties broken by name, so the plan is deterministic), and a payload is
// taken only while every image that holds it stays within maxLayers-reserved layers, one kept for
// its bundle. reserved counts the image's other layers (base, configuration, diff, runtime).
func PlanLayers(images []ImagePackages, maxLayers, reserved int) LayerPlan {
	if maxLayers <= 0 {
		maxLayers = DefaultMaxLayers
	}
	budget := maxLayers - reserved - 1 // one for the bundle
	users := map[PackageKey][]int{}
	size := map[PackageKey]int64{}
	for i, im := range images {
		for k, sz := range im.Packages {
			users[k] = append(users[k], i)
			size[k] = max(size[k], sz)
		}
	}
	keys := make([]PackageKey, 0, len(users))
	for k := range users {
		keys = append(keys, k)
	}
	value := func(k PackageKey) int64 { return size[k] * int64(len(users[k])-1) }
	slices.SortFunc(keys, func(a, b PackageKey) int {
		if c := cmp.Compare(value(b), value(a)); c != 0 {
			return c
		}
		if c := cmp.Compare(len(users[b]), len(users[a])); c != 0 {
			return c
		}
		if c := cmp.Compare(size[b], size[a]); c != 0 {
			return c
		}
		return cmp.Compare(a.String(), b.String())
	})
	plan := LayerPlan{MaxLayers: maxLayers, Images: make([]ImagePlan, len(images))}
	own := map[PackageKey]bool{}
	for _, k := range keys {
		fits := budget > 0
		for _, i := range users[k] {
			fits = fits && plan.Images[i].OwnLayers < budget
		}
		if !fits {
			continue
		}
		own[k] = true
		l := OwnLayer{Package: k, Bytes: size[k]}
		for _, i := range users[k] {
			plan.Images[i].OwnLayers++
			l.Images = append(l.Images, images[i].Name)
		}
		plan.Own = append(plan.Own, l)
		plan.Stored.PackageGrained += size[k]
	}
	bundles := map[string]int64{} // a bundle is shared only by images with the same rest
	sets := map[string]int64{}
	for i, im := range images {
		ip := &plan.Images[i]
		ip.Name = im.Name
		var rest, all []string
		var total int64
		for k, sz := range im.Packages {
			all = append(all, k.String())
			total += sz
			if !own[k] {
				rest = append(rest, k.String())
				ip.Bundled++
				ip.BundleBytes += sz
			}
		}
		ip.Layers = ip.OwnLayers
		if ip.Bundled > 0 {
			ip.Layers++
			slices.Sort(rest)
			bundles[fmt.Sprint(rest)] = ip.BundleBytes
		}
		slices.Sort(all)
		sets[fmt.Sprint(all)] = total
		plan.Stored.PerImage += total
	}
	for _, b := range bundles {
		plan.Stored.PackageGrained += b
	}
	for _, s := range sets {
		plan.Stored.PerInstallSet += s
	}
	for _, sz := range size {
		plan.Stored.Floor += sz
	}
	return plan
}
