package verify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/vm2image/vm2image/internal/engine"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/wire"
)

// RunOptions control Run.
type RunOptions struct {
	// Ref names img in the Docker engine. Empty: Run loads img under a temporary tag and
	// removes the tag after.
	Ref string
	// Timeout is how long the ports have, from the container's start, to accept a connection
	// (default 30s).
	Timeout time.Duration
	// VMHost is where the VM's services answer, for the comparison of GET / (default: the host
	// of a HOST:PORT source; none for dir: and tar: sources).
	VMHost string
	// ExecProbe checks ports the VM bound to loopback with `docker exec` and a tool of the
	// image (curl, wget, busybox, bash), even when the container's network namespace can be
	// entered from here (root, a local engine), which Run otherwise prefers.
	ExecProbe bool
	// Engine is the Docker engine to use; nil connects to the one DOCKER_HOST names.
	Engine *client.Client
	// StayUp is how long the container must keep running from its start (default 5s): an
	// image whose services die at once fails even when the VM listened on no port.
	StayUp time.Duration
}

func (o *RunOptions) applyDefaults(src source.Source) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.StayUp <= 0 {
		o.StayUp = 5 * time.Second
	}
	if o.VMHost == "" {
		o.VMHost = sourceHost(src.String())
	}
}

// sourceHost returns the host of a HOST:PORT or agent://HOST:PORT source, else "".
func sourceHost(spec string) string {
	spec = strings.TrimPrefix(spec, "agent://")
	if host, _, err := net.SplitHostPort(spec); err == nil {
		return host
	}
	return ""
}

// PortCheck is what Run found for one TCP port the VM listened on.
type PortCheck struct {
	Port     int    `json:"port"`
	Loopback bool   `json:"loopback,omitempty"` // the VM listened on loopback addresses only
	Accepts  bool   `json:"accepts"`
	HTTP     string `json:"http,omitempty"` // "same", "differs", or why GET / was not compared
	Detail   string `json:"detail,omitempty"`
}

// RunReport is the outcome of Run.
type RunReport struct {
	Image       string       `json:"image"`
	Container   string       `json:"container,omitempty"`
	Ports       []PortCheck  `json:"ports"`
	Notes       []string     `json:"notes,omitempty"`
	Differences []Difference `json:"-"` // Report.AddRun adds them to the report
	Seconds     float64      `json:"seconds"`
}

func (r *RunReport) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// vmPort is a TCP port the VM listened on, with what GET / answered there.
type vmPort struct {
	port     int
	loopback bool
	answer   *httpAnswer // nil: not HTTP, or not reachable from here
	why      string      // why answer is nil
}

// Run starts img in the Docker engine with its own configuration and checks that every TCP port
// the VM's processes listened on (the agent's aside) accepts a connection within the timeout;
// where the VM answers GET / over HTTP, the container must answer with the same status and
// body. Ports the VM bound to loopback only are checked from inside the container. The
// container (and a temporary tag) is removed after.
func Run(ctx context.Context, img v1.Image, src source.Source, opts RunOptions) (*RunReport, error) {
	start := time.Now()
	opts.applyDefaults(src)
	rr := &RunReport{Image: opts.Ref, Ports: []PortCheck{}}
	ports, err := listeningPorts(ctx, src, rr)
	if err != nil {
		return nil, err
	}
	if len(ports) == 0 {
		rr.note("the source shows no process listening on TCP: only checked that the container starts and stays up for %s", opts.StayUp)
	}
	for i := range ports {
		ports[i].askVM(ctx, opts.VMHost)
	}
	eng, err := engineClient(ctx, opts.Engine)
	if err != nil {
		return nil, err
	}
	if opts.Engine == nil {
		defer eng.Close()
	}
	if rr.Image == "" {
		if img == nil {
			return nil, errors.New("running an image: neither an image nor a reference in the engine")
		}
		tag, err := loadTemporary(ctx, eng, img)
		if err != nil {
			return nil, err
		}
		defer eng.ImageRemove(context.WithoutCancel(ctx), tag, client.ImageRemoveOptions{})
		rr.Image = tag
	}
	ports = rr.dropSkipped(ctx, eng, ports)
	started := time.Now()
	c, err := startContainer(ctx, eng, rr.Image)
	if c != nil {
		defer c.remove(context.WithoutCancel(ctx))
		rr.Container = c.id[:12]
	}
	if err != nil {
		return nil, err
	}
	c.loopback = c.loopbackProber(opts.ExecProbe, rr)
	deadline := time.Now().Add(opts.Timeout)
	for _, p := range ports {
		rr.check(ctx, c, p, deadline)
	}
	rr.stayUp(ctx, c, started.Add(opts.StayUp))
	if len(rr.Differences) > 0 {
		c.logTail(ctx, rr)
	}
	rr.Seconds = time.Since(start).Seconds()
	return rr, nil
}

// listeningPorts returns the TCP ports the VM's processes listen on, the agent's aside.
func listeningPorts(ctx context.Context, src source.Source, rr *RunReport) ([]vmPort, error) {
	ps, err := src.Processes(ctx, wire.ProcessArgs{ListeningOnly: true})
	if err != nil {
		return nil, fmt.Errorf("listing the source's processes: %w", err)
	}
	byPort := map[int]*vmPort{}
	udp := 0
	agentPort := sourcePort(src.String())
	for _, p := range ps {
		if isAgent(p) || agentPort != 0 && listensOn(p, agentPort) {
			continue
		}
		for _, s := range p.Listening {
			if !strings.HasPrefix(s.Proto, "tcp") {
				udp++
				continue
			}
			lo := isLoopback(s.Addr)
			if vp, ok := byPort[s.Port]; ok {
				vp.loopback = vp.loopback && lo
			} else {
				byPort[s.Port] = &vmPort{port: s.Port, loopback: lo}
			}
		}
	}
	if udp > 0 {
		rr.note("%d UDP sockets not checked (UDP has no connection to accept)", udp)
	}
	var out []vmPort
	for _, vp := range byPort {
		out = append(out, *vp)
	}
	slices.SortFunc(out, func(a, b vmPort) int { return a.port - b.port })
	return out, nil
}

// sourcePort returns the port of a HOST:PORT or agent://HOST:PORT source, else 0.
func sourcePort(spec string) int {
	_, port, err := net.SplitHostPort(strings.TrimPrefix(spec, "agent://"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

func listensOn(p procs.Process, port int) bool {
	for _, s := range p.Listening {
		if s.Port == port && strings.HasPrefix(s.Proto, "tcp") {
			return true
		}
	}
	return false
}

// isAgent reports whether p is vm2image's agent, whose port is not the VM's.
func isAgent(p procs.Process) bool {
	for _, s := range []string{p.Exe, p.Comm, first(p.Argv)} {
		if strings.HasPrefix(path.Base(s), "vm2image-agent") {
			return true
		}
	}
	return false
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func isLoopback(addr string) bool {
	ip := net.ParseIP(addr)
	return ip != nil && ip.IsLoopback()
}

// askVM records what the VM answers to GET / on the port, when it can be reached from here.
func (p *vmPort) askVM(ctx context.Context, host string) {
	switch {
	case host == "":
		p.why = "the source is not a running VM: its answer is unknown"
		return
	case p.loopback && !isLoopback(host) && host != "localhost":
		p.why = "the VM listens on loopback only: its answer cannot be asked from here"
		return
	}
	addr := net.JoinHostPort(host, strconv.Itoa(p.port))
	a, err := httpGet(ctx, addr, hostDial)
	if err != nil {
		p.why = "not HTTP on the VM (" + err.Error() + ")"
		return
	}
	p.answer = a
}

// check waits for the port to accept a connection in the container, then compares GET /.
func (rr *RunReport) check(ctx context.Context, c *container, p vmPort, deadline time.Time) {
	pc := PortCheck{Port: p.port, Loopback: p.loopback}
	name := "tcp/" + strconv.Itoa(p.port)
	err := c.waitPort(ctx, p, deadline)
	if err != nil {
		pc.Detail = err.Error()
		rr.Differences = append(rr.Differences, Difference{Kind: KindPort, Path: name, VM: "accepts connections", Image: err.Error()})
		rr.Ports = append(rr.Ports, pc)
		return
	}
	pc.Accepts = true
	switch {
	case p.answer == nil:
		pc.HTTP = p.why
	default:
		got, err := c.proberFor(p).get(ctx, p.port)
		switch {
		case err != nil:
			pc.HTTP = "differs"
			pc.Detail = err.Error()
			rr.Differences = append(rr.Differences, Difference{Kind: KindHTTP, Path: name, VM: p.answer.String(), Image: "GET /: " + err.Error()})
		case !got.same(p.answer):
			pc.HTTP = "differs"
			rr.Differences = append(rr.Differences, Difference{Kind: KindHTTP, Path: name, VM: p.answer.String(), Image: got.String()})
		default:
			pc.HTTP = "same"
		}
	}
	rr.Ports = append(rr.Ports, pc)
}

// stayUp checks that the container still runs at until (waiting for it when needed).
func (rr *RunReport) stayUp(ctx context.Context, c *container, until time.Time) {
	select {
	case <-time.After(time.Until(until)):
	case <-ctx.Done():
		return
	}
	if err := c.running(ctx); err != nil {
		rr.Differences = append(rr.Differences, Difference{Kind: KindStopped, Path: "container", VM: "runs its services", Image: err.Error()})
	}
}

func engineClient(ctx context.Context, c *client.Client) (*client.Client, error) {
	if c != nil {
		return c, nil
	}
	return engine.Connect(ctx)
}

// loadTemporary loads img into the engine under a new tag and returns the tag.
func loadTemporary(ctx context.Context, eng *client.Client, img v1.Image) (string, error) {
	var b [6]byte
	rand.Read(b[:])
	tag := "vm2image-verify/run:" + hex.EncodeToString(b[:])
	if err := image.Load(ctx, img, tag, eng); err != nil {
		return "", err
	}
	return tag, nil
}

// container is the running image.
type container struct {
	eng      *client.Client
	id       string
	ip       string
	pid      int
	loopback prober // from inside the container
}

func startContainer(ctx context.Context, eng *client.Client, ref string) (*container, error) {
	res, err := eng.ContainerCreate(ctx, client.ContainerCreateOptions{Image: ref})
	if err != nil {
		return nil, fmt.Errorf("creating a container of %s: %w", ref, err)
	}
	c := &container{eng: eng, id: res.ID}
	if _, err := eng.ContainerStart(ctx, c.id, client.ContainerStartOptions{}); err != nil {
		return c, fmt.Errorf("starting a container of %s: %w", ref, err)
	}
	st, err := eng.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	if err != nil {
		return c, fmt.Errorf("inspecting container %s: %w", c.id[:12], err)
	}
	if s := st.Container.State; s != nil {
		c.pid = s.Pid
	}
	if ns := st.Container.NetworkSettings; ns != nil {
		for _, ep := range ns.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				c.ip = ep.IPAddress.String()
				break
			}
		}
	}
	return c, nil
}

func (c *container) remove(ctx context.Context) {
	c.eng.ContainerRemove(ctx, c.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// running returns nil while the container runs, else how it ended.
func (c *container) running(ctx context.Context) error {
	st, err := c.eng.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspecting container: %w", err)
	}
	if s := st.Container.State; s != nil && !s.Running {
		return fmt.Errorf("the container stopped (exit code %d)", s.ExitCode)
	}
	return nil
}

// waitPort waits until the port accepts a connection while the container runs.
func (c *container) waitPort(ctx context.Context, p vmPort, deadline time.Time) error {
	var last error
	for {
		if err := c.running(ctx); err != nil {
			return err
		}
		if last = c.dialOnce(ctx, p); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no connection within the timeout: %v", last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *container) dialOnce(ctx context.Context, p vmPort) error {
	return c.proberFor(p).connect(ctx, p.port)
}

// proberFor returns how to reach the port: from here at the container's address, or from
// inside the container for loopback ports (and when the address is unknown).
func (c *container) proberFor(p vmPort) prober {
	if p.loopback || c.ip == "" {
		return c.loopback
	}
	return hostProber{ip: c.ip}
}

// logTail adds the container's last log lines to the notes.
func (c *container) logTail(ctx context.Context, rr *RunReport) {
	rc, err := c.eng.ContainerLogs(ctx, c.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "20"})
	if err != nil {
		return
	}
	defer rc.Close()
	var out bytes.Buffer
	stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 64<<10))
	if s := strings.TrimSpace(out.String()); s != "" {
		rr.note("container log (last lines):\n%s", s)
	}
}

// dropSkipped leaves out the VM ports that the image does not start: a port the VM listened on
// beyond loopback that the image does not expose belongs to a service the conversion skipped
// (sshd, ...). They are noted, not checked. An image whose configuration cannot be read keeps
// every port.
func (rr *RunReport) dropSkipped(ctx context.Context, eng *client.Client, ports []vmPort) []vmPort {
	res, err := eng.ImageInspect(ctx, rr.Image)
	if err != nil || res.Config == nil || len(res.Config.ExposedPorts) == 0 {
		return ports
	}
	var out []vmPort
	for _, p := range ports {
		if _, ok := res.Config.ExposedPorts[strconv.Itoa(p.port)+"/tcp"]; ok || p.loopback {
			out = append(out, p)
			continue
		}
		rr.note("tcp/%d is not checked: the image does not expose it (its service was skipped)", p.port)
	}
	return out
}
