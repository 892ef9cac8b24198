package services

import (
	"reflect"
	"testing"
)

// TestEnabledUnitsPostgresqlGenerator: postgresql.service enabled makes the clusters whose
// start.conf says auto (or that have none) services, as postgresql-common's generator does at
// boot; manual, disabled, configless and oddly named clusters are not.
func TestEnabledUnitsPostgresqlGenerator(t *testing.T) {
	files := map[string]string{
		"/lib/systemd/system/postgresql.service":      "[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=on\n",
		"/lib/systemd/system/postgresql@.service":     "[Service]\nType=forking\nExecStart=-/usr/bin/pg_ctlcluster --skip-systemctl-redirect %i start\n",
		"/etc/postgresql/15/main/postgresql.conf":     "port = 5432\n",
		"/etc/postgresql/15/main/start.conf":          "# comment\n\n  auto  # trailing\n",
		"/etc/postgresql/15/nostart/postgresql.conf":  "",
		"/etc/postgresql/16/manual/postgresql.conf":   "",
		"/etc/postgresql/16/manual/start.conf":        "manual\n",
		"/etc/postgresql/16/twice/postgresql.conf":    "",
		"/etc/postgresql/16/twice/start.conf":         "auto\nmanual\n",
		"/etc/postgresql/16/noconf/start.conf":        "auto\n",
		"/etc/postgresql/16/bad name/postgresql.conf": "",
	}
	links := map[string]string{"/etc/systemd/system/multi-user.target.wants/postgresql.service": "/lib/systemd/system/postgresql.service"}
	got := EnabledUnits(unitFS(files, links))
	want := []string{"postgresql.service", "postgresql@15-main.service", "postgresql@15-nostart.service"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("EnabledUnits = %q, want %q", got, want)
	}
	delete(links, "/etc/systemd/system/multi-user.target.wants/postgresql.service")
	if got := EnabledUnits(unitFS(files, links)); len(got) != 0 {
		t.Errorf("postgresql.service not enabled: EnabledUnits = %q, want none", got)
	}
	delete(files, "/lib/systemd/system/postgresql@.service")
	links["/etc/systemd/system/multi-user.target.wants/postgresql.service"] = "/lib/systemd/system/postgresql.service"
	if got := EnabledUnits(unitFS(files, links)); !reflect.DeepEqual(got, []string{"postgresql.service"}) {
		t.Errorf("no template: EnabledUnits = %q, want only postgresql.service", got)
	}
}

func FuzzPostgresqlClusters(f *testing.F) {
	f.Add("15", "main", "auto\n")
	f.Add("1\x00", "../x", "# c\nauto")
	f.Fuzz(func(t *testing.T, version, cluster, start string) {
		m := unitFS(map[string]string{
			"/lib/systemd/system/postgresql@.service":                         "[Service]\nExecStart=/bin/x %i\n",
			"/etc/postgresql/" + version + "/" + cluster + "/postgresql.conf": "",
			"/etc/postgresql/" + version + "/" + cluster + "/start.conf":      start,
		}, nil)
		for _, n := range postgresqlClusters(m) {
			if templateOf(n) != "postgresql@.service" {
				t.Fatalf("generated %q, not an instance of postgresql@.service", n)
			}
			for _, r := range n {
				if r == '/' || r == '\\' || r < 0x21 || r > 0x7e {
					t.Fatalf("generated unit name %q holds %q", n, r)
				}
			}
		}
	})
}
