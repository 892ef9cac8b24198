package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vm2image/vm2image/pkg/proto"
)

// TestHostAloneMeansDefaultPort: `inspect HOST` dials HOST:49153, the agent's default port,
// where it used to say "unknown source". A listener on a loopback address of its own stands in
// for the agent (it never answers: the point is where the converter connects).
func TestHostAloneMeansDefaultPort(t *testing.T) {
	for _, tc := range []struct{ host, spec string }{
		{"127.0.0.77", "127.0.0.77"},
		{"127.0.0.78", "agent://127.0.0.78"},
		{"127.0.0.79", "[127.0.0.79]"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			ln, err := net.Listen("tcp", net.JoinHostPort(tc.host, fmt.Sprint(proto.DefaultPort)))
			if errors.Is(err, syscall.EADDRINUSE) {
				t.Skipf("port %d is taken on %s (an agent listening on all addresses?): %v", proto.DefaultPort, tc.host, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan struct{}, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- struct{}{}
					defer c.Close()
					time.Sleep(3 * time.Second)
				}
			}()
			t.Setenv("VM2IMAGE_TOKEN", strongTestToken)
			code, stderr := runCLI(t, time.Second, "inspect", tc.spec)
			select {
			case <-accepted:
			default:
				t.Fatalf("inspect %s did not connect to %s:%d (exit %d, %q)", tc.spec, tc.host, proto.DefaultPort, code, stderr)
			}
		})
	}
}

// TestHostAloneNamesThePort: a refused connection to HOST alone names the port it tried, and
// what is neither a host nor a source form is still a usage mistake.
func TestHostAloneNamesThePort(t *testing.T) {
	t.Setenv("VM2IMAGE_TOKEN", strongTestToken)
	// 127.0.0.80: nobody listens there unless an agent took port 49153 on all addresses.
	if c, err := net.DialTimeout("tcp", "127.0.0.80:49153", time.Second); err == nil {
		c.Close()
		t.Skip("something listens on 127.0.0.80:49153")
	}
	code, stderr := runCLI(t, 5*time.Second, "inspect", "127.0.0.80")
	if code != 1 || !strings.Contains(stderr, "127.0.0.80:49153") || strings.Contains(stderr, "unknown source") {
		t.Errorf("exit %d, %q: want exit 1 and an error naming 127.0.0.80:49153", code, stderr)
	}
	code, stderr = runCLI(t, 5*time.Second, "inspect", "./vm-root")
	if code != 2 || !strings.Contains(stderr, `unknown source "./vm-root"`) || !strings.Contains(stderr, "HOST[:PORT]") {
		t.Errorf("exit %d, %q: want a usage error for a path without dir:", code, stderr)
	}
}

const strongTestToken = "k7Q2-vX9p_Lm4Rt8Zw3Ny6Bc1Hf5Jd0Gs"

// TestVersionFlag: --version prints the line the version command prints, as the agent does.
func TestVersionFlag(t *testing.T) {
	var a, b, stderr bytes.Buffer
	if code := execute(context.Background(), []string{"--version"}, &a, &stderr); code != 0 {
		t.Fatalf("--version: exit %d, %q", code, stderr.String())
	}
	if code := execute(context.Background(), []string{"version"}, &b, &stderr); code != 0 {
		t.Fatalf("version: exit %d, %q", code, stderr.String())
	}
	if a.String() != b.String() || !strings.HasPrefix(a.String(), "vm2image ") || strings.Count(a.String(), "\n") != 1 {
		t.Errorf("--version %q, version %q: want the same one line", a.String(), b.String())
	}
}
