package services

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenConfig is a converted web VM: nginx on 80 (v4 and v6), a DNS server on UDP, the app's
// busybox httpd on loopback only.
func goldenConfig() Config {
	return Config{
		Services: []Service{
			{Name: "busybox-httpd", Argv: []string{"busybox", "httpd", "-p", "127.0.0.1:8080", "-h", "/srv/app/public"},
				Exe: "/usr/bin/busybox", User: "app", UID: 1001, GID: 1001, Cwd: "/srv/app/public",
				Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, Restart: RestartOnFailure,
				Ports:      []Port{{"tcp", 8080, "127.0.0.1"}},
				Foreground: []string{"busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/srv/app/public"}},
			{Name: "dnsmasq", Argv: []string{"/usr/sbin/dnsmasq"}, Exe: "/usr/sbin/dnsmasq", User: "root", Cwd: "/",
				Ports: []Port{{"tcp", 53, "0.0.0.0"}, {"udp", 53, "0.0.0.0"}}, Restart: RestartAlways,
				Foreground: []string{"/usr/sbin/dnsmasq", "-k"}},
			{Name: "nginx", Argv: []string{"/usr/sbin/nginx"}, Exe: "/usr/sbin/nginx", User: "root", Cwd: "/",
				Ports: []Port{{"tcp", 80, "0.0.0.0"}, {"tcp", 80, "::"}}, Restart: RestartNo,
				Foreground: []string{"/usr/sbin/nginx", "-g", "daemon off;"}},
		},
		StopTimeout: 15 * time.Second,
		Notes:       []string{"leaving out vm2image-agent (pid 1, listening on tcp/49153): the vm2image agent"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	cfg := goldenConfig()
	var buf bytes.Buffer
	if err := WriteServicesYAML(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	golden(t, "services.yaml", buf.Bytes())

	back, err := ReadServicesYAML(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = ConfigVersion
	if diff := cmp.Diff(cfg, back); diff != "" {
		t.Errorf("services.yaml round trip (-want +got):\n%s", diff)
	}

	df := Dockerfile("debian:bookworm", []string{"/tmp/out/packages.tar.gz", "diff layer.tar"}, cfg, ImageConfig{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", `MOTD=say "hi" for $5`},
		WorkingDir: "/srv",
		Labels:     map[string]string{"org.vm2image.source": "web1:49153", "org.vm2image.os": "Debian GNU/Linux 12 (bookworm)"},
	})
	golden(t, "Dockerfile", []byte(df))

	compose, err := Compose("registry.local:5000/vms/web1:2024-05", cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "compose.yaml", compose)
}

func TestReadServicesYAMLErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown service field", "services:\n  - name: a\n    argv: [x]\n    colour: blue\n", "line 4: field colour not found"},
		{"unknown top field", "version: 1\nservice: []\n", "line 2: field service not found"},
		{"duplicate name", "services:\n  - name: a\n    argv: [x]\n  - name: a\n    argv: [y]\n", "line 4: service 2 (\"a\"): invalid services configuration: duplicate name"},
		{"bad restart", "services:\n  - name: a\n    argv: [x]\n    restart: sometimes\n", "line 2: service 1 (\"a\"): invalid services configuration: restart \"sometimes\""},
		{"empty argv", "services:\n  - name: a\n", "empty argv"},
		{"bad name", "services:\n  - name: A b\n    argv: [x]\n", "name \"A b\""},
		{"bad port", "services:\n  - name: a\n    argv: [x]\n    ports: [{proto: sctp, port: 1, addr: \"::\"}]\n", "port sctp/1"},
		{"bad duration", "stop_timeout: soon\nservices: []\n", "line 1"},
		{"newer version", "version: 2\nservices: []\n", "version 2"},
		{"two documents", "services: []\n---\nservices: []\n", "more than one document"},
		{"empty", "# nothing\n", "empty document"},
		{"not a map", "- a\n", "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadServicesYAML(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	_, err := ReadServicesYAML(strings.NewReader("services:\n  - name: a\n"))
	var se *ServiceError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &se) || se.Line != 2 {
		t.Errorf("error %v: want ErrInvalid and a ServiceError on line 2", err)
	}
}

func FuzzReadServicesYAML(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteServicesYAML(&buf, goldenConfig()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.String())
	f.Add("services:\n  - name: a\n    argv: [x, \"\"]\n    ports: [{proto: udp, port: 53, addr: \"::\"}]\nstop_timeout: 1m\n")
	f.Add("services: &a [*a]\n")
	f.Add("version: 1\nservices: []\nnotes: [\"x\"]\n")
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := ReadServicesYAML(strings.NewReader(in))
		if err != nil {
			return
		}
		// What was read writes back to a file that reads the same.
		var out bytes.Buffer
		if err := WriteServicesYAML(&out, cfg); err != nil {
			t.Fatalf("writing %+v: %v", cfg, err)
		}
		again, err := ReadServicesYAML(&out)
		if err != nil {
			t.Fatalf("reading back %q: %v", out.String(), err)
		}
		if diff := cmp.Diff(cfg, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", in, diff)
		}
	})
}

func TestJSONArray(t *testing.T) {
	words := []string{"plain", `q"uo\te`, "tab\tnew\nline\x01", "ünï", ""}
	var back []string
	if err := json.Unmarshal([]byte(jsonArray(words...)), &back); err != nil || !cmp.Equal(back, words) {
		t.Errorf("jsonArray(%q) = %s, decodes to %q, %v", words, jsonArray(words...), back, err)
	}
}
