package source

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Source is a VM to read from.
type Source interface {
	// String names the source as the user gave it.
	String() string
	Info(ctx context.Context) (*wire.Info, error)
	Packages(ctx context.Context) (*pkgmgr.DB, error)
	Deps(ctx context.Context, args wire.DepsArgs) ([]wire.DepsAnswer, error)
	Processes(ctx context.Context, args wire.ProcessArgs) ([]procs.Process, error)
	// Tree calls fn for every entry of the tree, in walk order.
	Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error)
	Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error)
	// Filesystem returns the whole tree as an uncompressed tar stream. The stream's Close
	// returns the walk's result through Result once it has been read to EOF.
	Filesystem(ctx context.Context, args wire.TreeArgs) (TarStream, error)
	// Files returns a tar stream of args.Paths.
	Files(ctx context.Context, args wire.TreeArgs) (TarStream, error)
	// Delta returns the delta (pkg/delta) that turns the file whose signature is given into the
	// source's file at path. Read it to EOF: an error at the end (the file changed while read,
	// say) voids it. The signature is at most wire.MaxDeltaSignature bytes.
	Delta(ctx context.Context, path string, signature []byte) (io.ReadCloser, error)
	Close() error
}

// TarStream is an uncompressed tar stream with the walk's result available after EOF.
type TarStream interface {
	io.ReadCloser
	// Result is valid once Read has returned io.EOF.
	Result() wire.TreeResult
	// WireBytes is how many bytes crossed the wire (compressed) so far; 0 for local sources.
	WireBytes() int64
}

// Options configure Open.
type Options struct {
	Token []byte // for remote agents
	// Fingerprint pins a remote agent's TLS certificate ("SHA256:..." as the agent prints it);
	// empty: the token's channel-bound proofs alone authenticate the agent.
	Fingerprint string
	// Plaintext talks to a remote agent over plain TCP (the agent's --insecure-plaintext).
	Plaintext   bool
	Compression string // on the wire: zstd (default), gzip, none
	// WorkDir holds what a tar: source unpacks (default: the system temp dir).
	WorkDir string
	Logf    func(format string, args ...any)
	// Disk configures disk: sources.
	Disk DiskOptions
}

// Open parses spec and opens the source: "HOST:PORT", "agent://HOST:PORT", "dir:PATH", "tar:PATH", "disk:PATH";
// HOST alone (and agent://HOST) means the agent's default port (WithDefaultPort).
func Open(ctx context.Context, spec string, opts Options) (Source, error) {
	spec = WithDefaultPort(spec)
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	switch {
	case strings.HasPrefix(spec, "dir:"):
		return OpenDir(strings.TrimPrefix(spec, "dir:"), spec)
	case strings.HasPrefix(spec, "tar:"):
		return OpenTar(ctx, strings.TrimPrefix(spec, "tar:"), spec, opts)
	case strings.HasPrefix(spec, "disk:"):
		return OpenDisk(ctx, strings.TrimPrefix(spec, "disk:"), spec, opts)
	case strings.HasPrefix(spec, "agent://"):
		return Dial(ctx, strings.TrimPrefix(spec, "agent://"), spec, opts)
	}
	if _, _, err := net.SplitHostPort(spec); err == nil {
		return Dial(ctx, spec, spec, opts)
	}
	return nil, fmt.Errorf("unknown source %q: want HOST[:PORT], agent://HOST:PORT, dir:PATH, tar:PATH or disk:PATH", spec)
}

// WithDefaultPort returns spec with the agent's default port (proto.DefaultPort) added when it
// names a host alone: an IP address ("10.0.0.5", "::1", "[::1]") or a host name ("vm",
// "vm.example.org"), bare or after agent://. Anything else is returned unchanged.
func WithDefaultPort(spec string) string {
	prefix := ""
	host := spec
	if h, ok := strings.CutPrefix(spec, "agent://"); ok {
		prefix, host = "agent://", h
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if net.ParseIP(host) == nil && !isHostName(host) {
		return spec
	}
	return prefix + net.JoinHostPort(host, strconv.Itoa(proto.DefaultPort))
}

// isHostName reports whether s is a DNS host name: dot-separated labels of letters, digits,
// hyphens and underscores, none empty or starting with a hyphen.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
