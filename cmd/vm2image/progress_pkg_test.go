package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/internal/testenv"
)

// TestConvertPackageCounts converts the RPM (with dnf, and named openSUSE with zypper) and
// pacman test distributions' VMs with
// --json-progress and a cache of its own (the packages layer is built, not found): the
// packages phase's items events count the packages dnf, zypper and pacman fetched and configured, of
// their totals, from the real tools' output in the build sandbox.
func TestConvertPackageCounts(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (vm, base string)
		want  int // packages installed: webd, its dependencies, and for RPM libfoo's downgrade
	}{
		{"dnf", func(t *testing.T) (string, string) {
			d := testenv.BuildRPMDist(t)
			return rpmVM(t, d.VM, testenv.ServeDir(t, d.Repo)), testenv.ImportRoot(t, d.Base, "vm2image-test/rpmbase:bare", d.Key)
		}, 5},
		{"zypper", func(t *testing.T) (string, string) {
			d := testenv.BuildRPMDist(t)
			return suseRoot(t, d.VM, testenv.ServeDir(t, d.Repo)), suseBase(t, d)
		}, 5},
		{"pacman", func(t *testing.T) (string, string) {
			d := testenv.BuildPacmanDist(t)
			return pacmanVM(t, d.VM, testenv.ServeDir(t, d.Repo)), testenv.ImportRoot(t, d.Base, "vm2image-test/pacmanbase:bare", d.Key)
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, base := tc.setup(t)
			t.Setenv("VM2IMAGE_INIT", testenv.InitBinary(t))
			var o convertOptions
			o.base, o.noContext, o.json = "docker-daemon:"+base, true, true
			o.format, o.builder, o.strategy, o.transfer, o.compression = "docker-archive", "chroot", "checksum", "diff", "gzip"
			o.output, o.cacheDir = filepath.Join(t.TempDir(), "vm.tar"), t.TempDir()
			var out, errOut bytes.Buffer
			if err := runConvert(context.Background(), o, "dir:"+vm, &out, &errOut); err != nil {
				t.Fatalf("convert: %v\n%s\n%s", err, out.String(), errOut.String())
			}
			last := map[string][2]int64{}
			sc := bufio.NewScanner(&errOut)
			for sc.Scan() {
				if !strings.HasPrefix(sc.Text(), "{") {
					continue // notes
				}
				var ev struct {
					Event, Phase, What string
					Done, Total        int64
				}
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("%q: %v", sc.Text(), err)
				}
				if ev.Event == "items" && ev.Phase == "packages" {
					last[ev.What] = [2]int64{ev.Done, ev.Total}
				}
			}
			w := [2]int64{int64(tc.want), int64(tc.want)}
			if last["fetched"] != w || last["configured"] != w {
				t.Errorf("packages fetched %v and configured %v (done, total); want %v of both\n%s", last["fetched"], last["configured"], w, errOut.String())
			}
		})
	}
}
