package builder

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestImport: an entry from a registry cache enters the layer cache only when its record is of
// the key, the base and the layer it claims; a valid one is then a cache hit.
func TestImport(t *testing.T) {
	layer := []byte("a layer tar, as the registry gave it")
	good := meta{Version: metaVersion, Key: "k1", BaseDigest: "sha256:base", LayerDiffID: "sha256:d1", LayerSize: int64(len(layer))}
	fetch := func(ctx context.Context, p string) error { return os.WriteFile(p, layer, 0o600) }
	for name, mod := range map[string]func(m map[string]any){
		"other key":     func(m map[string]any) { m["key"] = "k2" },
		"other base":    func(m map[string]any) { m["base_digest"] = "sha256:other" },
		"other layer":   func(m map[string]any) { m["layer_diff_id"] = "sha256:d2" },
		"other size":    func(m map[string]any) { m["layer_size"] = 1 },
		"other version": func(m map[string]any) { m["version"] = 99 },
		"unknown field": func(m map[string]any) { m["hook"] = "rm -rf /" },
	} {
		b, _ := json.Marshal(good)
		var m map[string]any
		must(t, json.Unmarshal(b, &m))
		mod(m)
		b, _ = json.Marshal(m)
		dir := t.TempDir()
		_, err := Import(context.Background(), dir, "k1", Imported{Meta: b, DiffID: "sha256:d1", Size: int64(len(layer)), BaseDigest: "sha256:base"}, fetch)
		if !errors.Is(err, ErrImport) {
			t.Errorf("%s: err %v, want ErrImport", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "k1")); err == nil {
			t.Errorf("%s: the entry was made", name)
		}
	}
	dir := t.TempDir()
	b, _ := json.Marshal(good)
	im := Imported{Meta: b, DiffID: "sha256:d1", Size: int64(len(layer)), BaseDigest: "sha256:base"}
	short := func(ctx context.Context, p string) error { return os.WriteFile(p, layer[:3], 0o600) }
	if _, err := Import(context.Background(), dir, "k1", im, short); err == nil {
		t.Error("a layer shorter than its record was imported")
	}
	if ok, err := Import(context.Background(), dir, "k1", im, fetch); err != nil || !ok {
		t.Fatalf("good entry: %v %v", ok, err)
	}
	if m, l, err := acquire(context.Background(), dir, "k1"); err != nil || m == nil || m.LayerDiffID != "sha256:d1" {
		t.Errorf("the imported entry is not a hit: %+v %v", m, err)
	} else {
		l.release()
	}
	if ok, err := Import(context.Background(), dir, "k1", im, fetch); err != nil || ok {
		t.Errorf("a second import of a held entry: %v %v", ok, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
