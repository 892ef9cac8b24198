package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

const (
	probeTimeout = 5 * time.Second
	maxBody      = 16 << 20
)

// prober reaches a port of the container.
type prober interface {
	connect(ctx context.Context, port int) error
	get(ctx context.Context, port int) (*httpAnswer, error)
}

// httpAnswer is what GET / answered. Status 0: unknown (a tool inside the container printed
// the body only).
type httpAnswer struct {
	status int
	body   []byte
}

func (a *httpAnswer) same(b *httpAnswer) bool {
	if a.status != 0 && b.status != 0 && a.status != b.status {
		return false
	}
	return bytes.Equal(a.body, b.body)
}

func (a *httpAnswer) String() string {
	status := "status unknown"
	if a.status != 0 {
		status = strconv.Itoa(a.status)
	}
	sum := sha256.Sum256(a.body)
	return fmt.Sprintf("%s, %d bytes %s", status, len(a.body), shortDigest(hex.EncodeToString(sum[:])))
}

type dialFunc func(ctx context.Context, addr string) (net.Conn, error)

func hostDial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// httpGet asks GET / of addr over connections dial makes.
func httpGet(ctx context.Context, addr string, dial dialFunc) (*httpAnswer, error) {
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, a string) (net.Conn, error) { return dial(ctx, a) },
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	hc := http.Client{Transport: tr, Timeout: probeTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return &httpAnswer{status: resp.StatusCode, body: body}, nil
}

// hostProber reaches the container at its address on the engine's network.
type hostProber struct{ ip string }

func (h hostProber) addr(port int) string { return net.JoinHostPort(h.ip, strconv.Itoa(port)) }

func (h hostProber) connect(ctx context.Context, port int) error {
	c, err := hostDial(ctx, h.addr(port))
	if err != nil {
		return err
	}
	return c.Close()
}

func (h hostProber) get(ctx context.Context, port int) (*httpAnswer, error) {
	return httpGet(ctx, h.addr(port), hostDial)
}

// nsProber connects from inside the container's network namespace (root, local engine).
type nsProber struct{ pid int }

func loopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

func (n nsProber) dial(ctx context.Context, addr string) (net.Conn, error) {
	return dialInNetns(ctx, n.pid, addr)
}

func (n nsProber) connect(ctx context.Context, port int) error {
	c, err := n.dial(ctx, loopbackAddr(port))
	if err != nil {
		return err
	}
	return c.Close()
}

func (n nsProber) get(ctx context.Context, port int) (*httpAnswer, error) {
	return httpGet(ctx, loopbackAddr(port), n.dial)
}

// loopbackProber chooses how to reach ports inside the container: its network namespace when
// this process can enter it, else `docker exec` with a tool of the image.
func (c *container) loopbackProber(execProbe bool, rr *RunReport) prober {
	if !execProbe && c.pid > 0 && strings.HasPrefix(c.eng.DaemonHost(), "unix://") {
		err := canEnterNetns(c.pid)
		if err == nil {
			return nsProber{pid: c.pid}
		}
		rr.note("cannot enter the container's network namespace (%v): using docker exec", err)
	}
	return &execProber{c: c}
}

// errNoTool is returned when the image holds none of the tools a check can use.
var errNoTool = errors.New("no tool in the image to reach the port with (bash, busybox, nc, curl, wget)")

// execProber runs a tool of the image inside the container with docker exec.
type execProber struct{ c *container }

func (e *execProber) connect(ctx context.Context, port int) error {
	p := strconv.Itoa(port)
	_, err := e.c.tryExec(ctx, [][]string{
		{"bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + p},
		{"busybox", "nc", "-z", "127.0.0.1", p},
		{"nc", "-z", "127.0.0.1", p},
		{"busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:" + p + "/"},
	})
	return err
}

func (e *execProber) get(ctx context.Context, port int) (*httpAnswer, error) {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	out, err := e.c.tryExec(ctx, [][]string{
		{"curl", "-s", url}, {"wget", "-q", "-O", "-", url}, {"busybox", "wget", "-q", "-O", "-", url},
	})
	if err != nil {
		return nil, err
	}
	return &httpAnswer{body: out}, nil
}

// tryExec runs the first of cmds the image can run and returns its output; a command that is
// not found (exit code 126 or 127) passes to the next.
func (c *container) tryExec(ctx context.Context, cmds [][]string) ([]byte, error) {
	for _, cmd := range cmds {
		out, code, err := c.exec(ctx, cmd)
		switch {
		case err != nil:
			return nil, err
		case code == 126 || code == 127:
			continue
		case code != 0:
			return nil, fmt.Errorf("%s in the container: exit code %d", strings.Join(cmd[:min(2, len(cmd))], " "), code)
		}
		return out, nil
	}
	return nil, errNoTool
}

// exec runs cmd in the container and returns its standard output and exit code.
func (c *container) exec(ctx context.Context, cmd []string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	ex, err := c.eng.ExecCreate(ctx, c.id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return nil, 0, fmt.Errorf("running %s in the container: %w", cmd[0], err)
	}
	att, err := c.eng.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("running %s in the container: %w", cmd[0], err)
	}
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, io.Discard, io.LimitReader(att.Reader, maxBody))
	att.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("running %s in the container: %w", cmd[0], err)
	}
	st, err := c.eng.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("running %s in the container: %w", cmd[0], err)
	}
	return out.Bytes(), st.ExitCode, nil
}
