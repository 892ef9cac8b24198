package main

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vm2image/vm2image/internal/testenv"
	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// TestAgentBinaryIsStaticAndSmall cross-builds the agent the way `make agents` does.
func TestAgentBinaryIsStaticAndSmall(t *testing.T) {
	testenv.Short(t)
	for _, arch := range []string{"amd64", "arm64", "386"} {
		out := filepath.Join(t.TempDir(), "vm2image-agent-"+arch)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building for %s: %v\n%s", arch, err, b)
		}
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: the agent is dynamically linked (%v)", arch, p.Type)
			}
		}
		f.Close()
		st, _ := os.Stat(out)
		t.Logf("%s: %.2f MB stripped", arch, float64(st.Size())/1e6)
		// 12 MiB: 8.6 MB before TLS; crypto/tls and crypto/x509 (with the RSA, ECDSA and ML-KEM
		// code they link) add 2.3 MB.
		if arch == "amd64" && st.Size() > 12<<20 {
			t.Errorf("amd64 agent is %d bytes, over the 12 MiB budget", st.Size())
		}
	}
}

// strongToken passes the agent's strength check.
const strongToken = "k7Q2-vX9p_Lm4Rt8Zw3Ny6Bc1Hf5Jd0Gs"

// startAgent runs the real binary and returns its address and the token it printed.
func startAgent(t *testing.T, args ...string) (addr string, lines []string) {
	t.Helper()
	cmd := exec.Command(testenv.AgentBinary(t), append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(stdout)
	n := 3
	if strings.Contains(strings.Join(args, " "), "--token-file") { // no token line then
		n = 2
	}
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimRight(line, "\n"))
	}
	go io.Copy(io.Discard, br)
	m := regexp.MustCompile(`^vm2image-agent listening on (127\.0\.0\.1:\d+)$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("first line %q", lines[0])
	}
	return m[1], lines
}

func TestAgentGeneratesTokenAndServes(t *testing.T) {
	addr, lines := startAgent(t)
	if len(lines) != 3 || !regexp.MustCompile(`^vm2image-agent fingerprint SHA256:[0-9a-f]{64}$`).MatchString(lines[1]) ||
		!strings.HasPrefix(lines[2], "token: ") {
		t.Fatalf("want the fingerprint on the second line and the generated token on the third, got %q", lines)
	}
	token := []byte(strings.TrimPrefix(lines[2], "token: "))
	if proto.TokenBits(token) < 256 {
		t.Errorf("generated token %q is weaker than 256 bits", token)
	}
	fp := strings.TrimPrefix(lines[1], "vm2image-agent fingerprint ")
	ctx := context.Background()

	// Garbage, a truncated handshake and a wrong token each fail cleanly...
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n" + strings.Repeat("\xff", 4096)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	c, _ = net.Dial("tcp", addr)
	c.Write([]byte("VM2I\x00"))
	c.Close()
	if _, err := proto.Dial(ctx, addr, []byte("wrong"), proto.ClientOptions{}); !errors.Is(err, proto.ErrAuth) {
		t.Errorf("wrong token: %v", err)
	}
	// ...and the agent keeps serving, to a client that pins its fingerprint.
	cl, err := proto.Dial(ctx, addr, token, proto.ClientOptions{Fingerprint: fp})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var info wire.Info
	if err := cl.CallJSON(ctx, wire.OpInfo, nil, &info); err != nil || info.AgentVersion == "" {
		t.Fatalf("info: %+v %v", info, err)
	}
	err = cl.CallJSON(ctx, "no-such-op", nil, nil)
	if !errors.Is(err, proto.ErrUnknownOp) || !strings.Contains(err.Error(), "no-such-op") {
		t.Errorf("unknown op: %v", err)
	}
	if err := cl.CallJSON(ctx, wire.OpInfo, nil, &info); err != nil {
		t.Errorf("info after an unknown op: %v", err)
	}
}

// TestAgentIsReadOnly serves a fixture root with --root, runs every operation against it, and
// checks that the tree did not change in any way (contents, metadata, new files).
func TestAgentIsReadOnly(t *testing.T) {
	testenv.Short(t)
	root := testenv.Overlay(t, testenv.Root(t, testenv.WebVM))
	before := tree(t, root)
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte(strongToken+"\n"), 0o600)
	addr, _ := startAgent(t, "--token-file", tok, "--root", root)
	ctx := context.Background()
	src, err := source.Open(ctx, addr, source.Options{Token: []byte(strongToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Info(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Packages(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Deps(ctx, wire.DepsArgs{Names: []string{"nginx-light"}, Recursive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Processes(ctx, wire.ProcessArgs{Env: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Tree(ctx, wire.TreeArgs{Digest: true}, func(*fsmeta.Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Hash(ctx, []string{"etc/passwd"}); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"zstd", "gzip", "none"} {
		ts, err := src.Filesystem(ctx, wire.TreeArgs{Compression: comp})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, ts); err != nil {
			t.Fatalf("%s: %v", comp, err)
		}
		ts.Close()
	}
	if d := cmp.Diff(before, tree(t, root)); d != "" {
		t.Errorf("the agent changed the tree it serves:\n%s", d)
	}
}

func tree(t *testing.T, root string) map[string]fsmeta.Entry {
	m := map[string]fsmeta.Entry{}
	err := fswalk.Walk(context.Background(), root, fswalk.Options{Digest: true, Xattrs: true}, func(e *fsmeta.Entry) error {
		c := *e
		c.Dev = 0 // overlay device numbers are stable, but keep the comparison to what a user sees
		m[e.Path] = c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
