package builder

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// fakeInstaller is a backend whose install command fails as a whole when a line holds a package
// in gone, naming it (as apt-get does for a missing version) or not (as for a broken script).
type fakeInstaller struct {
	gone      map[string]bool
	name      bool
	lines     []string
	installed map[string]bool
}

var _ backend = (*fakeInstaller)(nil)

func (f *fakeInstaller) run(_ context.Context, argv, _ []string, out io.Writer) error {
	specs := argv[3:]
	f.lines = append(f.lines, strings.Join(specs, " "))
	failed := false
	for _, s := range specs {
		if f.gone[s] {
			failed = true
			if f.name {
				n, v, _ := strings.Cut(s, "=")
				fmt.Fprintf(out, "E: Version '%s' for '%s' was not found\n", v, n)
			}
		}
	}
	if failed {
		fmt.Fprintln(out, "E: Sub-process /usr/bin/dpkg returned an error code (1)")
		return &exitError{argv: argv, code: 100}
	}
	for _, s := range specs {
		f.installed[s] = true
	}
	return nil
}

func (f *fakeInstaller) setNetwork(context.Context, bool) error { return nil }

func (f *fakeInstaller) writeFile(context.Context, string, []byte, fs.FileMode) error { return nil }
func (f *fakeInstaller) rename(context.Context, string, string) error                 { return nil }
func (f *fakeInstaller) remove(context.Context, string) error                         { return nil }
func (f *fakeInstaller) exists(context.Context, string) (bool, error)                 { return false, nil }
func (f *fakeInstaller) readDB(context.Context) (*pkgmgr.DB, error)                   { return &pkgmgr.DB{}, nil }
func (f *fakeInstaller) tree(context.Context) (string, error)                         { return "", nil }
func (f *fakeInstaller) close() error                                                 { return nil }

func TestRetryInstall(t *testing.T) {
	specs := []string{"a=1", "b=2", "c=3", "d=4", "e=5"}
	for _, tc := range []struct {
		name      string
		gone      []string
		named     bool
		lines     []string
		installed string
	}{
		{"named culprits come off the line", []string{"b=2", "e=5"}, true,
			[]string{"a=1 b=2 c=3 d=4 e=5", "a=1 c=3 d=4"}, "a=1 c=3 d=4"},
		{"unnamed failure is halved", []string{"d=4"}, false,
			[]string{"a=1 b=2 c=3 d=4 e=5", "a=1 b=2", "c=3 d=4 e=5", "c=3", "d=4 e=5", "d=4", "e=5"}, "a=1 b=2 c=3 e=5"},
		{"everything gone", specs, true, []string{"a=1 b=2 c=3 d=4 e=5"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeInstaller{gone: map[string]bool{}, name: tc.named, installed: map[string]bool{}}
			for _, g := range tc.gone {
				f.gone[g] = true
			}
			b := &build{be: f, opts: Options{Logf: t.Logf, Output: io.Discard, StepTimeout: 1 << 40}, res: &Result{}}
			s := pkgmgr.Step{Name: stepInstall, Argv: append([]string{"apt-get", "install", "-y"}, specs...)}
			out, err := b.step(context.Background(), s)
			if err == nil {
				t.Fatal("first run succeeded")
			}
			if err := b.retry(context.Background(), s, specs, out); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(f.lines, " | "), strings.Join(tc.lines, " | "); got != want {
				t.Errorf("lines run:\n%s\nwant\n%s", got, want)
			}
			var inst []string
			for _, s := range specs {
				if f.installed[s] {
					inst = append(inst, s)
				}
			}
			if got := strings.Join(inst, " "); got != tc.installed {
				t.Errorf("installed %q, want %q", got, tc.installed)
			}
			all := strings.Join(b.res.Errors, "\n")
			for _, g := range tc.gone {
				if !strings.Contains(all, g) {
					t.Errorf("errors %q do not name %s", b.res.Errors, g)
				}
			}
		})
	}
}

func TestCulprits(t *testing.T) {
	keep := []string{"nginx-light=1.22", "libfoo:i386=2", "python3.11=3.11", "bar-1.0-1.x86_64", "baz=1-r0", "qux"}
	for _, tc := range []struct{ out, want string }{
		{"E: Version '1.22' for 'nginx-light' was not found\n", "nginx-light=1.22"},
		{"E: Unable to locate package libfoo\nE: Couldn't find any package by glob 'python3.11'\n", "libfoo:i386=2 python3.11=3.11"},
		{"E: Package 'qux' has no installation candidate\n", "qux"},
		{"No match for argument: bar-1.0-1.x86_64\nError: Unable to find a match: bar-1.0-1.x86_64\n", "bar-1.0-1.x86_64"},
		{"ERROR: unable to select packages:\n  baz-1-r0 (no such package):\n", "baz=1-r0"},
		{"error: target not found: qux\n", "qux"},
		{"E: Sub-process /usr/bin/dpkg returned an error code (1)\n", ""},
	} {
		if got := strings.Join(culprits(tc.out, keep), " "); got != tc.want {
			t.Errorf("culprits(%q) = %q, want %q", tc.out, got, tc.want)
		}
	}
}
