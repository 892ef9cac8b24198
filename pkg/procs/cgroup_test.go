package procs

import "testing"

func TestUnitFromCgroup(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0::/system.slice/nginx.service\n", "nginx.service"},
		{"0::/system.slice/system-postgresql.slice/postgresql@15-main.service\n", "postgresql@15-main.service"},
		{"0::/system.slice/app.service/payload\n", "app.service"},
		{"0::/user.slice/user-1000.slice/session-3.scope\n", "session-3.scope"},
		{"0::/\n", ""},
		{"0::/init.scope\n", "init.scope"},
		{"12:pids:/system.slice/x.service\n1:name=systemd:/system.slice/cron.service\n0::/\n", "cron.service"},
		{"garbage", ""},
		{"0::/system.slice/bad name.service\n", ""},
		{"0::/docker/0123abcd\n", ""},
	} {
		if got := UnitFromCgroup([]byte(tc.in)); got != tc.want {
			t.Errorf("UnitFromCgroup(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzUnitFromCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/nginx.service\n"))
	f.Add([]byte("1:name=systemd:/system.slice/cron.service\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u := UnitFromCgroup(b)
		if u != "" && !validUnitName(u) {
			t.Fatalf("invalid unit %q from %q", u, b)
		}
	})
}
