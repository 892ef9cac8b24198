package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBaseTableLookup(t *testing.T) {
	defaults := DefaultBases()
	custom := (&Config{Bases: BaseTable{"debian:12": "registry.local/debian:12", "ubuntu": "mirror/ubuntu:{VERSION_ID}"}}).BaseTable()
	tests := []struct {
		table       BaseTable
		id, version string
		want        string
		ok          bool
	}{
		{defaults, "debian", "10", "debian:buster", true},
		{defaults, "debian", "11", "debian:bullseye", true},
		{defaults, "debian", "12", "debian:bookworm", true},
		{defaults, "debian", "13", "debian:trixie", true},
		{defaults, "debian", "9", "debian:9", true},
		{defaults, "debian", "", "", false}, // sid has no VERSION_ID
		{defaults, "ubuntu", "22.04", "ubuntu:22.04", true},
		{defaults, "ubuntu", "24.04", "ubuntu:24.04", true},
		{defaults, "centos", "7", "centos:7", true},
		{defaults, "rocky", "8.9", "rockylinux:8", true},
		{defaults, "rocky", "9.3", "rockylinux:9", true},
		{defaults, "almalinux", "9.4", "almalinux:9", true},
		{defaults, "fedora", "40", "fedora:40", true},
		{defaults, "alpine", "3.19.1", "alpine:3.19", true},
		{defaults, "alpine", "3", "", false}, // no minor version to fill in
		{defaults, "arch", "", "archlinux:latest", true},
		{defaults, "opensuse-leap", "15.5", "opensuse/leap:15.5", true},
		{defaults, " Debian ", " 12 ", "debian:bookworm", true},
		{defaults, "gentoo", "2.14", "", false},
		{defaults, "", "12", "", false},
		{custom, "debian", "12", "registry.local/debian:12", true},
		{custom, "debian", "11", "debian:bullseye", true},
		{custom, "ubuntu", "20.04", "mirror/ubuntu:20.04", true},
	}
	for _, tt := range tests {
		got, ok := tt.table.Lookup(tt.id, tt.version)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%q, %q) = %q, %v; want %q, %v", tt.id, tt.version, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vm2image.yaml")
	data := "bases:\n  debian:12: registry.local/debian:12\n  alpine: mirror/alpine:{MAJOR}.{MINOR}\nexcludes:\n  - /var/cache/*\n  - /tmp/*\ncompression: zstd\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Compression != Zstd || len(c.Excludes) != 2 || c.Excludes[1] != "/tmp/*" {
		t.Errorf("config = %+v", c)
	}
	table := c.BaseTable()
	if ref, _ := table.Lookup("debian", "12"); ref != "registry.local/debian:12" {
		t.Errorf("debian 12 -> %q", ref)
	}
	if ref, _ := table.Lookup("alpine", "3.20.0"); ref != "mirror/alpine:3.20" {
		t.Errorf("alpine 3.20.0 -> %q", ref)
	}
	if ref, _ := table.Lookup("fedora", "40"); ref != "fedora:40" {
		t.Errorf("built-ins lost: fedora 40 -> %q", ref)
	}
}

func TestLoadConfigErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"syntax", "bases:\n  debian:12: a\n   bad: [\n", "line 3"},
		{"unknown setting", "bases:\n  debian:12: a\ncompresion: gzip\n", "line 3"},
		{"wrong type", "excludes: 12\nbases: {}\n", "line 1"},
		{"bad key", "compression: gzip\nbases:\n  debian:12: ok\n  'debian 12': x\n", "line 4"},
		{"bad value", "bases:\n  debian:12: ''\n", "line 2"},
		{"bad compression", "bases: {}\n\ncompression: lz4\n", "line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("LoadConfig error = %v; want one naming %s and %q", err, p, tt.want)
			}
		})
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("LoadConfig of a missing file succeeded")
	}
}
