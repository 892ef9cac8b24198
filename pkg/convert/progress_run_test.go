package convert

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// bytesProgress keeps the last bytes figure of each phase.
type bytesProgress struct {
	mu   sync.Mutex
	last map[string][2]int64
	n    map[string]int
}

func (p *bytesProgress) Phase(string)       {}
func (p *bytesProgress) Done(string, error) {}
func (p *bytesProgress) Bytes(phase string, d, t int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last[phase] = [2]int64{d, t}
	p.n[phase]++
}

// TestRunReportsDiffBytes: in both transfer modes the diff phase reports the bytes that moved
// against a total known before they moved (the manifest's, or the diff's), and the two agree.
func TestRunReportsDiffBytes(t *testing.T) {
	root := newVM(t, vmFiles)
	baseDir, _ := newBaseLayout(t, baseFiles, hostArch)
	initPath, _ := fakeInit(t)
	for _, tr := range []Transfer{TransferFull, TransferDiff} {
		o := testOptions(t, root, baseDir, initPath)
		o.Output, o.NoContext, o.Transfer = filepath.Join(t.TempDir(), "img.tar"), true, tr
		prog := &bytesProgress{last: map[string][2]int64{}, n: map[string]int{}}
		o.Progress = prog
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		got := prog.last[PhaseDiff]
		done, total := got[0], got[1]
		t.Logf("%s: %d reports, last %d of %d", tr, prog.n[PhaseDiff], done, total)
		if total <= 0 || done <= 0 || done > total+total/10 || done < total/2 {
			t.Errorf("%s transfer: diff bytes %d of %d; want a known total the bytes reach", tr, done, total)
		}
	}
}
