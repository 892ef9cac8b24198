package services

import (
	"reflect"
	"testing"
	"testing/fstest"
)

func TestParseTmpfiles(t *testing.T) {
	lines, skipped := ParseTmpfiles("t.conf", []byte(`# comment
d /run/sshd 0755 root root -
D! /run/app 2775 app app 10d
f /run/app/ready 0640 app - - hello world
F+ /tmp/x - - - -
L+ /run/link - - - - /etc/target
L /var/run/l2 - - - - ../x
d %t/spec 0700
d /var/lib/app 0755 - - -
x /tmp/foo
e /run/bar
L /run/nolink
d /run/badmode 9999
`))
	want := []TmpfilesLine{
		{Type: 'd', Path: "/run/sshd", Mode: 0o755, User: "root", Group: "root", Origin: "t.conf:2"},
		{Type: 'D', Path: "/run/app", Mode: 0o2775, User: "app", Group: "app", Origin: "t.conf:3"},
		{Type: 'f', Path: "/run/app/ready", Mode: 0o640, User: "app", Arg: "hello world", Origin: "t.conf:4"},
		{Type: 'F', Replace: true, Path: "/tmp/x", Origin: "t.conf:5"},
		{Type: 'L', Replace: true, Path: "/run/link", Arg: "/etc/target", Origin: "t.conf:6"},
		{Type: 'L', Path: "/var/run/l2", Arg: "../x", Origin: "t.conf:7"},
		{Type: 'd', Path: "/run/spec", Mode: 0o700, Origin: "t.conf:8"},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got  %+v\nwant %+v", lines, want)
	}
	if len(skipped) != 5 {
		t.Errorf("skipped %q, want 5 (outside /run, types x and e, L without target, bad mode)", skipped)
	}
}

func TestLoadTmpfilesOverride(t *testing.T) {
	fsys := fstest.MapFS{
		"usr/lib/tmpfiles.d/a.conf": {Data: []byte("d /run/a 0700\n")},
		"etc/tmpfiles.d/a.conf":     {Data: []byte("d /run/a 0750\n")}, // shadows the vendor file
		"usr/lib/tmpfiles.d/b.conf": {Data: []byte("d /run/a 0777\nd /run/b\n")},
		"usr/lib/tmpfiles.d/c.txt":  {Data: []byte("d /run/c\n")},
	}
	lines, _ := LoadTmpfiles(fsys)
	if len(lines) != 2 || lines[0].Path != "/run/a" || lines[0].Mode != 0o750 || lines[1].Path != "/run/b" {
		t.Errorf("lines %+v", lines)
	}
}

func FuzzParseTmpfiles(f *testing.F) {
	f.Add([]byte("d /run/x 0755 root root -\nL+ /run/l - - - - /t\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, _ := ParseTmpfiles("f", b)
		for _, l := range lines {
			if l.Path[0] != '/' || l.Mode > 0o7777 {
				t.Fatalf("line %+v", l)
			}
		}
	})
}
