package image

import "testing"

// TestDefaultBasesFamilies maps the os-release of each family's distributions, as they ship
// it, to the registry names and tags their official images use.
func TestDefaultBasesFamilies(t *testing.T) {
	for _, tc := range []struct{ id, version, want string }{
		{"rhel", "9.4", "registry.access.redhat.com/ubi9/ubi:latest"},
		{"centos", "7", "centos:7"},
		{"centos", "9", "quay.io/centos/centos:stream9"},
		{"rocky", "9.3", "rockylinux:9"},
		{"almalinux", "8.10", "almalinux:8"},
		{"fedora", "40", "fedora:40"},
		{"ol", "8.9", "oraclelinux:8"},
		{"amzn", "2023", "amazonlinux:2023"},
		{"sles", "15.5", "registry.suse.com/suse/sle15:15.5"},
		{"opensuse-leap", "15.6", "opensuse/leap:15.6"},
		{"opensuse-tumbleweed", "20240601", "opensuse/tumbleweed:latest"},
		{"arch", "", "archlinux:latest"},
		{"alpine", "3.19.1", "alpine:3.19"},
	} {
		if got, ok := DefaultBases().Lookup(tc.id, tc.version); !ok || got != tc.want {
			t.Errorf("%s %s: %q (%v), want %q", tc.id, tc.version, got, ok, tc.want)
		}
	}
	c := &Config{Bases: BaseTable{"fedora": "registry.local/fedora:{VERSION_ID}"}}
	if got, _ := c.BaseTable().Lookup("fedora", "40"); got != "registry.local/fedora:40" {
		t.Errorf("an overridden fedora base: %q", got)
	}
}
