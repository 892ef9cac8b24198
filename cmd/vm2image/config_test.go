package main

import (
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vm2image/vm2image/pkg/image"
)

// TestConvertConfigFile: --config's excludes are added to --exclude, and its compression is used
// unless --compression is given (the README documents both).
func TestConvertConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "vm2image.yaml")
	writeFile(t, conf, "bases:\n  debian:12: registry.local/debian:bookworm\nexcludes: [\"/srv/cache/*\"]\ncompression: zstd\n")
	for _, tc := range []struct {
		set  bool
		flag string
		want image.Compression
	}{{false, "gzip", image.Zstd}, {true, "gzip", image.Gzip}} {
		o := convertOptions{configFile: conf, compression: tc.flag, compressionSet: tc.set, output: filepath.Join(dir, "out.tar"),
			format: "docker-archive", builder: "chroot", strategy: "checksum", transfer: "diff", excludes: []string{"/opt/big/*"}}
		o.sourceOptions.compression = "zstd"
		opts, err := o.convertOptions("dir:"+dir, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if opts.Compression != tc.want {
			t.Errorf("--compression %s (given: %v) with config zstd: got %s, want %s", tc.flag, tc.set, opts.Compression, tc.want)
		}
		if !slices.Equal(opts.Excludes, []string{"/srv/cache/*", "/opt/big/*"}) {
			t.Errorf("excludes %q", opts.Excludes)
		}
		if ref, _ := opts.Config.BaseTable().Lookup("debian", "12"); ref != "registry.local/debian:bookworm" {
			t.Errorf("base %q", ref)
		}
	}
}
