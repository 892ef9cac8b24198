package suggest

import (
	"errors"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlag(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("listen", "", "")
	fs.String("token-file", "", "")
	fs.Bool("quiet", false, "")
	fs.Bool("secret", false, "")
	fs.MarkHidden("secret")
	for _, tc := range []struct{ arg, want string }{
		{"--listn", "did you mean --listen?"},
		{"--lsiten", "did you mean --listen?"},
		{"--token", "did you mean --token-file?"},
		{"--tokenfile", "did you mean --token-file?"},
		{"--quite", "did you mean --quiet?"},
		{"--secrt", ""},      // hidden flags are not suggested
		{"--frobnicate", ""}, // nothing close
		{"-z", ""},           // shorthand errors have no name to match
	} {
		err := fs.Parse([]string{tc.arg})
		if err == nil {
			t.Fatalf("%s: parsed", tc.arg)
		}
		if got := Flag(fs, err); got != tc.want {
			t.Errorf("%s (%v): got %q, want %q", tc.arg, err, got, tc.want)
		}
	}
	if Flag(fs, errors.New("something else")) != "" || Flag(fs, nil) != "" {
		t.Error("a hint for an error that is not an unknown flag")
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"abc", "abc", 0}, {"abc", "acb", 1}, {"listen", "listn", 1}, {"kitten", "sitting", 3}, {"", "ab", 2}} {
		if got := distance(tc.a, tc.b); got != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
}
