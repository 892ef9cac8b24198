package vmread_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vm2image/vm2image/pkg/vmread"
	"github.com/vm2image/vm2image/pkg/wire"
)

// TestFilesMissingOptionalPathsAreNotLogged: asking for repository files a VM may lack
// (etc/apt/trusted.gpg, preferences) logs nothing for the missing ones (they are still in the
// answer's problems), while an unreadable file is still logged.
func TestFilesMissingOptionalPathsAreNotLogged(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb http://deb.debian.org/debian bookworm main\n"), 0o644)
	var mu sync.Mutex
	var logged []string
	a, err := vmread.New(vmread.Options{Root: root, Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf(format, args...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d/", "/etc/apt/trusted.gpg", "/etc/apt/trusted.gpg.d/",
		"/etc/apt/preferences", "/etc/apt/preferences.d/", "/etc/yum.repos.d/"}
	for _, p := range paths {
		res, err := a.Files(context.Background(), wire.TreeArgs{Paths: []string{p}, Recursive: true, Compression: "none"}, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if strings.Contains(p, "sources.list") != (len(res.Problems) == 0) {
			t.Errorf("%s: problems %v", p, res.Problems)
		}
	}
	if len(logged) != 0 {
		t.Errorf("missing optional files logged: %q", logged)
	}
	// A file that is there but cannot be read is still an error worth a line.
	if os.Geteuid() != 0 {
		secret := filepath.Join(root, "etc/apt/preferences")
		os.WriteFile(secret, []byte("x"), 0)
		a.Files(context.Background(), wire.TreeArgs{Paths: []string{"/etc/apt/preferences"}, Compression: "none"}, io.Discard)
		if len(logged) == 0 {
			t.Error("an unreadable file was not logged")
		}
	}
}
