package wire

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// goldens are the protocol's JSON as the agent spoke it before these types moved here: every
// field set, so a renamed tag or a changed omitempty shows.
var goldens = []struct {
	name   string
	value  any
	golden string
}{
	{"Info", &Info{
		OS:   OSRelease{ID: "debian", IDLike: []string{"x"}, VersionID: "12", Codename: "bookworm", PrettyName: "Debian", Fields: map[string]string{"ID": "debian"}},
		Arch: "amd64", Kernel: "6.1", Hostname: "h", CPUs: 2, MemoryBytes: 3,
		Mounts: []Mount{{Path: "/", FSType: "ext4", Source: "/dev/vda1"}}, Root: "/", AgentVersion: "1",
	}, `{"os":{"id":"debian","id_like":["x"],"version_id":"12","version_codename":"bookworm","pretty_name":"Debian","fields":{"ID":"debian"}},"arch":"amd64","kernel":"6.1","hostname":"h","cpus":2,"memory_bytes":3,"mounts":[{"path":"/","fstype":"ext4","source":"/dev/vda1"}],"root":"/","agent_version":"1"}`},
	{"TreeArgs", &TreeArgs{Excludes: []string{"/tmp/*"}, NoXattrs: true, Digest: true, Compression: "gzip", Level: 3, Paths: Paths{"/a", "\xff"}, Recursive: true},
		`{"excludes":["/tmp/*"],"no_xattrs":true,"digest":true,"compression":"gzip","level":3,"paths":["/a",{"b64":"/w=="}],"recursive":true}`},
	{"TreeResult", &TreeResult{Stats: fswalk.Stats{Entries: 1, Files: 2, Dirs: 3, Symlinks: 4, Hardlinks: 5, Devices: 6, FIFOs: 7, SocketsSkipped: 8, Bytes: 9, Errors: 10},
		Problems: []Problem{{Path: "/p", Err: "e"}}, ProblemsTotal: 1},
		`{"stats":{"Entries":1,"Files":2,"Dirs":3,"Symlinks":4,"Hardlinks":5,"Devices":6,"FIFOs":7,"SocketsSkipped":8,"Bytes":9,"Errors":10},"problems":[{"path":"/p","error":"e"}],"problems_total":1}`},
	{"ProcessArgs", &ProcessArgs{Env: true, ListeningOnly: true}, `{"env":true,"listening_only":true}`},
	{"HashArgs", &HashArgs{Paths: Paths{"/a"}}, `{"paths":["/a"]}`},
	{"DepsArgs", &DepsArgs{Names: []string{"nginx"}, Recursive: true}, `{"names":["nginx"],"recursive":true}`},
	{"DepsAnswer", &[]DepsAnswer{{Name: "a", Installed: true, Version: "1", Arch: "amd64",
		Edges: []Edge{{Kind: pkgmgr.Depends, Alts: []pkgmgr.Relation{{Name: "b"}}, To: "b"}}}},
		`[{"name":"a","installed":true,"version":"1","arch":"amd64","edges":[{"kind":"depends","alts":[{"name":"b"}],"to":"b"}]}]`},
	{"DeltaArgs", &DeltaArgs{Path: "/f", Signature: []byte{1, 2}, Compression: "none"}, `{"path":"/f","signature":"AQI=","compression":"none"}`},
	{"DeltaResult", &DeltaResult{Size: 5, Stats: delta.Stats{SignatureBytes: 1, DeltaBytes: 2, LiteralBytes: 3, CopiedBytes: 4}},
		`{"size":5,"stats":{"signature_bytes":1,"delta_bytes":2,"literal_bytes":3,"copied_bytes":4}}`},
}

func TestJSONMatchesGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			b, err := json.Marshal(g.value)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != g.golden {
				t.Fatalf("encoding changed the wire:\n got %s\nwant %s", b, g.golden)
			}
			back := reflect.New(reflect.TypeOf(g.value).Elem())
			if err := json.Unmarshal([]byte(g.golden), back.Interface()); err != nil {
				t.Fatalf("decoding the golden: %v", err)
			}
			if !reflect.DeepEqual(back.Interface(), g.value) {
				t.Fatalf("round trip changed the value:\n got %+v\nwant %+v", back.Interface(), g.value)
			}
		})
	}
}
