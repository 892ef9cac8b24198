package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
)

// TestConvertTransferTakesWhatItHolds: in diff transfer mode a file the converter already holds
// under another path (a copy of /usr/bin/bash) is read locally and a large modified file
// (/usr/bin/perl with a few bytes appended) comes as a block delta; the image still equals
// the VM, byte for byte, and far less than the layer's contents crossed the wire.
func TestConvertTransferTakesWhatItHolds(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	vm := testenv.StartWebVM(t)
	bash, err := os.ReadFile(filepath.Join(vm.Root, "usr/bin/bash"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(vm.Root, "opt/bash-copy"), bash, 0o755))
	perl := filepath.Join(vm.Root, "usr/bin/perl")
	f, err := os.OpenFile(perl, os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	fmt.Fprint(f, "appended by the test")
	must(t, f.Close())

	out := filepath.Join(t.TempDir(), "vm.tar")
	tag := fmt.Sprintf("vm2image-test/transfer:%d", os.Getpid())
	rep := convertFixture(t, vm, convertOptions{output: out, tag: tag})
	if rep.LocalContentBytes < int64(len(bash)) {
		t.Errorf("local content %d bytes: the copy of bash (%d bytes) should have been read locally", rep.LocalContentBytes, len(bash))
	}
	if rep.DiffLayer == nil || rep.BytesTransferred*2 > rep.DiffLayer.ContentBytes {
		t.Errorf("%d bytes crossed the wire for %d bytes of layer contents", rep.BytesTransferred, rep.DiffLayer.ContentBytes)
	}
	want := snapshotForCompare(t, vm.Root, true)
	run(t, "docker", "load", "-i", out)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	if d := cmp.Diff(want, snapshotForCompare(t, exportImage(t, tag), false)); d != "" {
		t.Errorf("the image's tree differs from the VM's (-vm +image):\n%s", d)
	}
}
