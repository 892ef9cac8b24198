package fleet

import (
	"context"
	"sync"
	"testing"

	"github.com/vm2image/vm2image/pkg/convert"
)

// TestResumeConvertsWhatChanged: --resume skips a VM converted before only while its inventory
// entry and the run's settings are the ones it was converted with: a VM whose source was
// corrected, or a run that pushes elsewhere, converts it again (the state directory would
// otherwise call the old image done).
func TestResumeConvertsWhatChanged(t *testing.T) {
	state := t.TempDir()
	var mu sync.Mutex
	var converted []string
	run := func(inv string, settings string) {
		t.Helper()
		i, err := Parse("/srv/fleet/inv.yaml", []byte(inv), nil)
		if err != nil {
			t.Fatal(err)
		}
		converted = nil
		_, err = Run(context.Background(), i, Options{StateDir: state, Resume: true, Settings: settings,
			Convert: func(ctx context.Context, vm VM) (*convert.Report, error) {
				mu.Lock()
				defer mu.Unlock()
				converted = append(converted, vm.Name+"="+vm.Source)
				return &convert.Report{}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
	}
	const two = "vms:\n  - name: web\n    source: dir:/vms/web\n  - name: db\n    source: dir:/vms/db\n"
	run(two, "push reg/a")
	if len(converted) != 2 {
		t.Fatalf("first run converted %v", converted)
	}
	run(two, "push reg/a")
	if len(converted) != 0 {
		t.Errorf("resume with nothing changed converted %v", converted)
	}
	run("vms:\n  - name: web\n    source: dir:/vms/web2\n  - name: db\n    source: dir:/vms/db\n", "push reg/a")
	if len(converted) != 1 || converted[0] != "web=dir:/vms/web2" {
		t.Errorf("resume after web's source changed converted %v, want web from its new source", converted)
	}
	run("vms:\n  - name: web\n    source: dir:/vms/web2\n  - name: db\n    source: dir:/vms/db\n", "push reg/b")
	if len(converted) != 2 {
		t.Errorf("resume pushing to another repository converted %v, want both", converted)
	}
}
