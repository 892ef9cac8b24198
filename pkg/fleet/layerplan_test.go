package fleet

import (
	"fmt"
	"testing"
)

func pkgs(names ...string) map[PackageKey]int64 {
	m := map[PackageKey]int64{}
	for _, n := range names {
		m[PackageKey{Manager: "dpkg", Name: n, Version: "1.0-1", Arch: "amd64"}] = int64(len(n)) << 20
	}
	return m
}

// TestPlanLayersShares: packages common to several images get their own layers, and the
// package-grained storage is below the per-install-set storage when sets overlap.
func TestPlanLayersShares(t *testing.T) {
	images := []ImagePackages{
		{Name: "web1", Packages: pkgs("nginx-light", "libssl3", "postgresql-15")},
		{Name: "web2", Packages: pkgs("nginx-light", "libssl3", "redis-server")},
		{Name: "db1", Packages: pkgs("postgresql-15", "libssl3")},
	}
	p := PlanLayers(images, 10, 4)
	own := map[string]int{}
	for _, l := range p.Own {
		own[l.Package.Name] = len(l.Images)
	}
	if own["libssl3"] != 3 || own["nginx-light"] != 2 || own["postgresql-15"] != 2 {
		t.Errorf("own layers %v", own)
	}
	if p.Stored.PackageGrained > p.Stored.Floor || p.Stored.PerInstallSet <= p.Stored.PackageGrained {
		t.Errorf("stored %+v: want floor <= package-grained < per install set", p.Stored)
	}
	if q := PlanLayers(images, 10, 4); fmt.Sprint(q) != fmt.Sprint(p) {
		t.Error("two plans of the same fleet differ")
	}
}

// TestPlanLayersWithinLimit: a VM with 1,000 packages stays within the engine's layer limit.
func TestPlanLayersWithinLimit(t *testing.T) {
	var names []string
	for i := range 1000 {
		names = append(names, fmt.Sprintf("pkg%04d", i))
	}
	images := []ImagePackages{{Name: "big", Packages: pkgs(names...)}, {Name: "big2", Packages: pkgs(names[:600]...)}}
	const reserved = 6 // base layers, configuration, diff, runtime
	p := PlanLayers(images, DefaultMaxLayers, reserved)
	for _, im := range p.Images {
		if im.Layers+reserved > DefaultMaxLayers || im.OwnLayers == 0 {
			t.Errorf("%s: %d package layers + %d others > %d", im.Name, im.Layers, reserved, DefaultMaxLayers)
		}
		if im.OwnLayers+im.Bundled != len(images[0].Packages) && im.Name == "big" {
			t.Errorf("%s: %d own + %d bundled != 1000", im.Name, im.OwnLayers, im.Bundled)
		}
	}
}
