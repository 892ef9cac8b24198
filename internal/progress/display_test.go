package progress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newFake(mode Mode) (*Display, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	d := &Display{mode: mode, w: &buf, interval: Interval, stop: make(chan struct{})}
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d.tracker.now = c.now
	return d, &buf, c
}

// TestPlainFigures: the plain mode prints a phase's bytes of the total, its rate and time left,
// at most once per Interval, and the phase's end with its time.
func TestPlainFigures(t *testing.T) {
	d, buf, c := newFake(Plain)
	d.Phase("diff")
	c.t = c.t.Add(2 * time.Second)
	d.Bytes("diff", 100<<20, 400<<20) // 50 MiB/s: 6s left
	c.t = c.t.Add(time.Second)
	d.Bytes("diff", 150<<20, 400<<20) // within the interval: no line
	c.t = c.t.Add(3 * time.Second)
	d.Bytes("diff", 300<<20, 400<<20)
	d.Done("diff", nil)
	want := []string{
		"vm2image: diff...",
		"vm2image: diff: 100.0 MiB of 400.0 MiB (25%), 50.0 MiB/s, 6.0s left",
		"vm2image: diff: 300.0 MiB of 400.0 MiB (75%), 50.0 MiB/s, 2.0s left",
		"vm2image: diff done in 6.0s",
	}
	if got := strings.Split(strings.TrimSpace(buf.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plain output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestJSONEvents: every event is one JSON object a line with the documented fields.
func TestJSONEvents(t *testing.T) {
	d, buf, c := newFake(JSON)
	d.Phase("packages")
	c.t = c.t.Add(time.Second)
	d.Items("packages", "configured", 3, 40)
	d.Done("packages", nil)
	d.Phase("diff")
	c.t = c.t.Add(4 * time.Second)
	d.Bytes("diff", 40, 100)
	d.Done("diff", errors.New("reading: gone"))
	var evs []map[string]any
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		evs = append(evs, m)
	}
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6: %s", len(evs), buf)
	}
	check := func(i int, key string, want any) {
		t.Helper()
		if evs[i][key] != want {
			t.Errorf("event %d %s = %v, want %v", i, key, evs[i][key], want)
		}
	}
	check(0, "event", "start")
	check(1, "event", "items")
	check(1, "what", "configured")
	check(1, "done", 3.0)
	check(1, "total", 40.0)
	check(2, "event", "done")
	check(2, "seconds", 1.0)
	check(4, "event", "bytes")
	check(4, "done", 40.0)
	check(4, "total", 100.0)
	check(4, "rate", 10.0)
	check(4, "eta_seconds", 6.0)
	check(5, "event", "failed")
	check(5, "error", "reading: gone")
	for i, e := range evs {
		if _, ok := e["time"].(string); !ok || e["phase"] == "" {
			t.Errorf("event %d lacks time or phase: %v", i, e)
		}
	}
}

// TestTermLines: on a terminal the finished phases say done with their time, no spinner, and
// the running one its figures; every redraw rewrites the same lines in place.
func TestTermLines(t *testing.T) {
	d, buf, c := newFake(Term)
	d.Phase("connect")
	c.t = c.t.Add(500 * time.Millisecond)
	d.Done("connect", nil)
	d.Phase("diff")
	c.t = c.t.Add(2 * time.Second)
	d.Bytes("diff", 1<<30, 4<<30)
	frames := strings.Split(buf.String(), "\x1b[2A")
	last := frames[len(frames)-1]
	for _, want := range []string{"connect    done 500ms", "diff       2.0s  1.0 GiB of 4.0 GiB (25%), 512.0 MiB/s, 6.0s left"} {
		if !strings.Contains(last, want) {
			t.Errorf("last frame %q lacks %q", last, want)
		}
	}
	c.t = c.t.Add(time.Second)
	d.Items("diff", "configured", 2, 5)
	if !strings.Contains(buf.String(), "2/5 configured") {
		t.Errorf("no item count in %q", buf.String())
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		850 * time.Millisecond: "850ms", 4200 * time.Millisecond: "4.2s",
		185 * time.Second: "3m05s", 62 * time.Minute: "1h02m",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestLines: a command's progress sentences become message events, and their [N/M] items.
func TestLines(t *testing.T) {
	d, buf, _ := newFake(JSON)
	w := d.Lines("experiment", "runs")
	w.Write([]byte("experiment: [3/12] dir: full #1 ok; 2m left\nexperiment: prep"))
	w.Write([]byte("aring x\n"))
	out := buf.String()
	for _, want := range []string{`"event":"message","phase":"experiment"`, `"text":"experiment: preparing x"`,
		`"event":"items","phase":"experiment","done":3,"total":12,"what":"runs"`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lines lack %s:\n%s", want, out)
		}
	}
	q, qbuf, _ := newFake(Quiet)
	q.Lines("experiment", "runs").Write([]byte("experiment: [1/2]\n"))
	if qbuf.Len() != 0 {
		t.Errorf("quiet printed %q", qbuf)
	}
}

// TestTermLog: a warning printed while the phases are drawn erases them, appears, and the
// phases are drawn again below it.
func TestTermLog(t *testing.T) {
	d, buf, c := newFake(Term)
	d.Phase("connect")
	c.t = c.t.Add(time.Second)
	d.Done("connect", nil)
	buf.Reset()
	d.Log().Write([]byte("warning: something\n"))
	if got, want := buf.String(), "\x1b[1A\r\x1b[Jwarning: something\n\r\x1b[2Kconnect    done 1.0s\n"; got != want {
		t.Errorf("log over the display wrote %q, want %q", got, want)
	}
}

// TestJSONLastFigures: figures held back by the rate limit are sent before the phase's end, so
// a tool sees the final count.
func TestJSONLastFigures(t *testing.T) {
	d, buf, c := newFake(JSON)
	d.Phase("packages")
	c.t = c.t.Add(time.Second)
	d.Items("packages", "configured", 19, 20)
	d.Items("packages", "configured", 20, 20) // within the half second: held back
	if strings.Contains(buf.String(), `"done":20`) {
		t.Fatalf("not rate limited: %s", buf)
	}
	d.Done("packages", nil)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], `"event":"items","phase":"packages","done":20,"total":20`) || !strings.Contains(lines[3], `"event":"done"`) {
		t.Errorf("events:\n%s", buf)
	}
}

// TestJSONHeldKind: a count of one kind held back by the rate limit is sent with the next
// event of another kind, not lost (the packages phase's fetched, then configured).
func TestJSONHeldKind(t *testing.T) {
	d, buf, c := newFake(JSON)
	d.Phase("packages")
	c.t = c.t.Add(time.Second)
	d.Items("packages", "fetched", 4, 5)
	d.Items("packages", "fetched", 5, 5) // held back
	c.t = c.t.Add(time.Second)
	d.Items("packages", "configured", 1, 5)
	if !strings.Contains(buf.String(), `"done":5,"total":5,"what":"fetched"`) {
		t.Errorf("the held-back fetched count was not sent with the next event:\n%s", buf)
	}
}
