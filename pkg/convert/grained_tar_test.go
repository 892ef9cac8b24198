package convert

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestBundleEachPathOnce: payloads that share directories (usr/, usr/share/) and, rarely, a
// file make a bundle that holds each path once (Docker refuses a layer holding a path twice:
// "duplicates of file paths not supported"), the shared file as the later package ships it.
func TestBundleEachPathOnce(t *testing.T) {
	dir := t.TempDir()
	payload := func(name string, files map[string]string) payloadLayer {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, d := range []string{"usr/", "usr/share/", "etc/"} {
			tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
		}
		for _, n := range []string{"etc/shared", "usr/share/" + name} {
			body := files[n]
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
			tw.Write([]byte(body))
		}
		tw.Close()
		p := filepath.Join(dir, name+".tar")
		must(t, os.WriteFile(p, b.Bytes(), 0o600))
		return payloadLayer{path: p}
	}
	a := payload("a", map[string]string{"etc/shared": "from a", "usr/share/a": "a"})
	b := payload("b", map[string]string{"etc/shared": "from b", "usr/share/b": "b"})
	var out bytes.Buffer
	must(t, concatLayers(&out, []payloadLayer{a, b}))
	count, bodies := map[string]int{}, map[string]string{}
	tr := tar.NewReader(&out)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		count[h.Name]++
		var body bytes.Buffer
		body.ReadFrom(tr)
		bodies[h.Name] = body.String()
	}
	for n, c := range count {
		if c != 1 {
			t.Errorf("%s %d times in the bundle", n, c)
		}
	}
	if len(count) != 6 || bodies["etc/shared"] != "from b" || bodies["usr/share/a"] != "a" || bodies["usr/share/b"] != "b" {
		t.Errorf("bundle entries %v, bodies %q", count, bodies)
	}
}
