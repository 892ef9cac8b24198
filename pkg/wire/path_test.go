package wire

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPathsSurviveJSON(t *testing.T) {
	in := TreeArgs{Paths: Paths{"etc/passwd", "bad \xff\xfe name", "new\nline", "", "ünïcode"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out TreeArgs
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, out); d != "" {
		t.Errorf("round trip (-in +out):\n%s\n%s", d, b)
	}
	d := DeltaArgs{Path: "x\x80y"}
	b, _ = json.Marshal(d)
	var d2 DeltaArgs
	if err := json.Unmarshal(b, &d2); err != nil || d2.Path != d.Path {
		t.Errorf("delta path: %q %v", d2.Path, err)
	}
}

func FuzzPathJSON(f *testing.F) {
	f.Add([]byte(`["a",{"b64":"/w=="}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ps Paths
		if json.Unmarshal(b, &ps) != nil {
			return
		}
		again, err := json.Marshal(ps)
		if err != nil {
			t.Fatal(err)
		}
		var ps2 Paths
		if err := json.Unmarshal(again, &ps2); err != nil || !cmp.Equal(ps, ps2) {
			t.Fatalf("re-encoding changed the paths: %q -> %q (%v)", ps, ps2, err)
		}
	})
}
