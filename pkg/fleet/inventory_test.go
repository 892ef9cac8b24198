package fleet

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

const goodInventory = `defaults:
  token_file: fleet.token
  base: docker-daemon:debian:bookworm
  excludes: [/srv/cache/*]
  cache_repo: registry.local:5000/cache
vms:
  - name: web1
    source: 10.0.0.5:49153
  - name: db1
    source: dir:roots/db1
    cache_repo: registry.local:5000/db-cache
    token_file: /etc/db1.token
    excludes: [/var/tmp/*]
    no_packages: true
`

func TestInventoryResolved(t *testing.T) {
	inv, err := Parse("/srv/fleet/inv.yaml", []byte(goodInventory), nil)
	if err != nil {
		t.Fatal(err)
	}
	vms := inv.Resolved()
	if len(vms) != 2 || vms[0].Line != 7 || vms[1].Line != 9 {
		t.Fatalf("resolved %+v", vms)
	}
	web, db := vms[0], vms[1]
	if web.Source != "10.0.0.5:49153" || web.TokenFile != "/srv/fleet/fleet.token" || web.Base != "docker-daemon:debian:bookworm" || web.NoPackages != nil {
		t.Errorf("web1 %+v", web)
	}
	if db.Source != "dir:/srv/fleet/roots/db1" || db.TokenFile != "/etc/db1.token" || db.NoPackages == nil || !*db.NoPackages {
		t.Errorf("db1 %+v", db)
	}
	if web.CacheRepo != "registry.local:5000/cache" || db.CacheRepo != "registry.local:5000/db-cache" {
		t.Errorf("cache repositories: web1 %q, db1 %q", web.CacheRepo, db.CacheRepo)
	}
	if strings.Join(db.Excludes, " ") != "/srv/cache/* /var/tmp/*" || strings.Join(web.Excludes, " ") != "/srv/cache/*" {
		t.Errorf("excludes: web1 %q, db1 %q", web.Excludes, db.Excludes)
	}
}

// TestInventoryErrorsNameTheLine: every kind of bad inventory is refused with the file and the
// line of the mistake.
func TestInventoryErrorsNameTheLine(t *testing.T) {
	badSource := errors.New("unknown source")
	check := func(s string) error {
		if strings.HasPrefix(s, "bogus:") {
			return badSource
		}
		return nil
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "vms:\n  - name: a\n    source: dir:/x\n    sauce: 1\n", "inv.yaml: yaml: unmarshal errors:\n  line 4: field sauce not found"},
		{"duplicate", "vms:\n  - name: a\n    source: dir:/x\n  - name: a\n    source: dir:/y\n", "inv.yaml:4: VM \"a\" again (first at line 2)"},
		{"bad name", "vms:\n  - name: a\n    source: dir:/x\n  - name: ../etc\n    source: dir:/y\n", "inv.yaml:4: VM name \"../etc\""},
		{"no source", "vms:\n  - name: a\n", "inv.yaml:2: VM \"a\" has no source"},
		{"no name", "vms:\n  - source: dir:/x\n", "inv.yaml:2: a VM without a name"},
		{"bad source", "vms:\n  - name: a\n    source: dir:/x\n  - name: b\n    source: bogus:1\n", "inv.yaml:4: VM \"b\": unknown source"},
		{"no vms", "defaults:\n  base: auto\n", "no VMs"},
		{"empty", "", "empty"},
		{"name in defaults", "defaults:\n  name: x\nvms:\n  - name: a\n    source: dir:/x\n", "defaults: name, source and tag belong to each VM"},
		{"not yaml", "vms: [\n", "inv.yaml: yaml: line"},
		{"wrong type", "vms:\n  - name: a\n    source: dir:/x\n    excludes: 3\n", "line 4"},
		{"cache repo without registry", "defaults:\n  base: auto\n  cache_repo: cache\nvms:\n  - name: a\n    source: dir:/x\n", "inv.yaml:2: defaults: cache_repo \"cache\""},
		{"cache repo digest", "vms:\n  - name: a\n    source: dir:/x\n  - name: b\n    source: dir:/y\n    cache_repo: r.local/c@sha256:00\n", "inv.yaml:4: VM \"b\": cache_repo"},
		{"cache repo bad name", "vms:\n  - name: a\n    source: dir:/x\n    cache_repo: r.local/UPPER\n", "inv.yaml:2: VM \"a\": cache_repo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join("/x", "inv.yaml"), []byte(tc.yaml), check)
			if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrInventory containing %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodInventory))
	f.Add([]byte("vms:\n  - name: a\n    source: dir:/x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := Parse("inv.yaml", b, nil)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, vm := range inv.Resolved() {
			if !nameRE.MatchString(vm.Name) || vm.Source == "" || seen[vm.Name] {
				t.Fatalf("accepted VM %+v", vm)
			}
			seen[vm.Name] = true
		}
	})
}

// TestInventoryNameCollidesWithReport: VM "web.report" would keep its result in web.report.json,
// the file that holds VM "web"'s conversion report: one overwrites the other in the state
// directory. The inventory is refused, naming the line.
func TestInventoryNameCollidesWithReport(t *testing.T) {
	inv := "vms:\n  - name: web\n    source: dir:/a\n  - name: web.report\n    source: dir:/b\n"
	_, err := Parse("/srv/fleet/inv.yaml", []byte(inv), nil)
	if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), "inv.yaml:4") {
		t.Errorf("want an inventory error at line 4, got %v", err)
	}
}
