package vmread

import "testing"

func TestParseOSRelease(t *testing.T) {
	r := ParseOSRelease([]byte("# comment\nID=debian\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"12\"\nPRETTY_NAME='Debian \\\"x\\\"'\nVERSION_CODENAME=bookworm\nbogus line\n"))
	if r.ID != "debian" || r.VersionID != "12" || r.Codename != "bookworm" || len(r.IDLike) != 2 || r.IDLike[1] != "fedora" {
		t.Errorf("parsed %+v", r)
	}
	if ParseOSRelease(nil).ID != "linux" {
		t.Error("an empty os-release should default ID to linux (as os-release(5) says)")
	}
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte("ID=debian\nVERSION_ID=\"12\"\n"))
	f.Add([]byte("A=\"\nB='\n=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := ParseOSRelease(b)
		if r.ID == "" {
			t.Fatal("empty ID")
		}
	})
}
