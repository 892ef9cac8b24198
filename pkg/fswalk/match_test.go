package fswalk

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/proc", "/proc", true},
		{"/proc", "proc", true},
		{"/proc", "/proc/1/maps", true},
		{"/proc", "/a/proc", false},
		{"/proc", "/a/proc/x", false},
		{"/proc", "/processes", false},
		{"proc", "/proc/self", true}, // no leading slash: anchored all the same
		{"/tmp/*", "/tmp", false},
		{"/tmp/*", "/tmp/x", true},
		{"/tmp/*", "/tmp/x/y/z", true},
		{"/tmp/*", "/var/tmp/x", false},
		{"/var/cache/apt/archives/*.deb", "/var/cache/apt/archives/vim_9.0_amd64.deb", true},
		{"/var/cache/apt/archives/*.deb", "/var/cache/apt/archives/partial", false},
		{"/home/*/.cache", "/home/alice/.cache/pip/x", true},
		{"/home/*/.cache", "/home/alice/.cached", false},
		{"/home/*/.cache", "/home/.cache", false},
		{"/var/log/*.gz", "/var/log/syslog.1.gz", true},
		{"/var/log/*.gz", "/var/log/old/x.gz", false},
		{"/a/?", "/a/b", true},
		{"/a/[bc]", "/a/c", true},
		{"/a/[^bc]", "/a/c", false},
		{`/a/\*`, "/a/*", true},
		{`/a/\*`, "/a/b", false},
		{"//tmp//x/", "/tmp/x", true}, // cleaned
		{"/tmp/../etc", "/etc/passwd", true},
		{"/", "/etc", false}, // empty patterns match nothing
		{"", "/etc", false},
		{"/etc", "/", false},
		{"/etc", ".", false},
		{"/a/[", "/a/[", false}, // malformed
		{"/x\xff", "/x\xff/y", true},
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

// FuzzMatch checks Match against the compiled matcher the walk uses, and that a match covers
// the subtree.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{{"/proc", "/proc/1"}, {"/tmp/*", "/tmp/x"}, {"/home/*/.cache", "/home/a/.cache"},
		{"a/[b-c]/d", "a/b/d/e"}, {`\`, "x"}, {"/a/../b", "b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, p string) {
		got := Match(pattern, p)
		if got && !Match(pattern, strings.TrimSuffix(p, "/")+"/child") {
			t.Errorf("Match(%q, %q) but not its child", pattern, p)
		}
		x, err := compileExcludes([]string{pattern})
		if err != nil {
			if got {
				t.Errorf("malformed %q matched %q", pattern, p)
			}
			return
		}
		rel := strings.Trim(p, "/")
		if rel == "" || strings.Contains(rel, "//") {
			return
		}
		if inner := x.matchAny(rel); inner != got {
			t.Errorf("Match(%q, %q) = %v, compiled matcher says %v", pattern, p, got, inner)
		}
	})
}

func TestParseMountinfo(t *testing.T) {
	in := "22 27 0:21 / /proc rw,relatime - proc proc rw\n" +
		"\n" +
		"36 35 98:0 /mnt1 /mnt/with\\040space\\011tab rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n" +
		"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n" +
		"41 1 0:50 / /back\\134slash\\999 rw - fuse.sshfs user@host:/x\\040y rw\n"
	got, err := ParseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ID: 22, Parent: 27, MountPoint: "/proc", FSType: "proc", Source: "proc"},
		{ID: 36, Parent: 35, MountPoint: "/mnt/with space\ttab", FSType: "ext3", Source: "/dev/root"},
		{ID: 40, Parent: 31, MountPoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", Source: "cgroup"},
		{ID: 41, Parent: 1, MountPoint: `/back\slash\999`, FSType: "fuse.sshfs", Source: "user@host:/x y"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{
		"22 27 0:21 / /proc rw,relatime proc proc rw",  // no separator
		"x 27 0:21 / /proc rw,relatime - proc proc rw", // id
		"22 27 0:21 / /proc rw - proc",                 // no source
	} {
		if _, err := ParseMountinfo(strings.NewReader(in + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 6") {
			t.Errorf("%q: got error %v, want one naming line 6", bad, err)
		}
	}
	if !IsPseudoFS("fuse.sshfs") || !IsPseudoFS("nfs4") || IsPseudoFS("overlay") || IsPseudoFS("ext4") || IsPseudoFS("fuseblk") {
		t.Error("IsPseudoFS")
	}
}

func TestParseMountinfoOfThisProcess(t *testing.T) {
	f, err := os.Open(DefaultMountinfo)
	if err != nil {
		t.Skip("no mountinfo here:", err)
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil || len(mounts) == 0 {
		t.Fatalf("%d mounts, %v", len(mounts), err)
	}
	root := mountsUnder(mounts, "/")
	if _, ok := root["proc"]; !ok && len(root) > 0 {
		t.Logf("no /proc among %d mounts", len(root))
	}
}

// escapeMountField encodes what unescapeOctal decodes, the way the kernel does.
func escapeMountField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '\\' || c >= 0x7f {
			fmt.Fprintf(&b, `\%03o`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzParseMountinfo checks that no input panics and that mounts re-encoded parse back the same.
func FuzzParseMountinfo(f *testing.F) {
	f.Add([]byte("22 27 0:21 / /proc rw,relatime - proc proc rw\n"))
	f.Add([]byte("36 35 98:0 /mnt1 /mnt/a\\040b rw master:1 - ext3 /dev/root rw\n\n1 2 3 4 5 6 - x"))
	f.Add([]byte("1 1 0:1 / / rw - - - -\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		mounts, err := ParseMountinfo(bytes.NewReader(in))
		if err != nil {
			return
		}
		var enc strings.Builder
		for _, m := range mounts {
			fmt.Fprintf(&enc, "%d %d 0:0 / %s rw - %s %s rw\n", m.ID, m.Parent,
				escapeMountField(m.MountPoint), escapeMountField(m.FSType), escapeMountField(m.Source))
		}
		again, err := ParseMountinfo(strings.NewReader(enc.String()))
		if err != nil {
			t.Fatalf("re-encoded mounts do not parse: %v\n%s", err, enc.String())
		}
		if !reflect.DeepEqual(again, mounts) && !(len(again) == 0 && len(mounts) == 0) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, mounts)
		}
	})
}
