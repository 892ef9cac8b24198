package source

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/vm2image/vm2image/pkg/fsmeta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/vmread"
	"github.com/vm2image/vm2image/pkg/wire"
)

// local runs the agent's code in-process on a directory.
type local struct {
	name    string
	a       *vmread.Reader
	cleanup func() error
}

var _ Source = (*local)(nil)

// OpenDir opens a directory holding a VM's root as a source.
func OpenDir(dir, name string) (Source, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("opening source %s: %w", name, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("opening source %s: not a directory", name)
	}
	a, err := vmread.New(vmread.Options{Root: dir})
	if err != nil {
		return nil, err
	}
	return &local{name: name, a: a}, nil
}

func (l *local) String() string { return l.name }

func (l *local) Info(ctx context.Context) (*wire.Info, error) { return l.a.Info(ctx) }

func (l *local) Packages(ctx context.Context) (*pkgmgr.DB, error) { return l.a.Packages(ctx) }

func (l *local) Deps(ctx context.Context, args wire.DepsArgs) ([]wire.DepsAnswer, error) {
	return l.a.Deps(ctx, args)
}

func (l *local) Processes(ctx context.Context, args wire.ProcessArgs) ([]procs.Process, error) {
	return l.a.Processes(ctx, args)
}

func (l *local) Tree(ctx context.Context, args wire.TreeArgs, fn func(*fsmeta.Entry) error) (wire.TreeResult, error) {
	return l.a.Tree(ctx, args, fn)
}

func (l *local) Hash(ctx context.Context, paths []string) ([]fswalk.HashResult, error) {
	return l.a.Hash(ctx, paths), nil
}

func (l *local) Filesystem(ctx context.Context, args wire.TreeArgs) (TarStream, error) {
	return l.stream(ctx, func(ctx context.Context, w io.Writer) (wire.TreeResult, error) {
		return l.a.Filesystem(ctx, args, w)
	}), nil
}

func (l *local) Files(ctx context.Context, args wire.TreeArgs) (TarStream, error) {
	return l.stream(ctx, func(ctx context.Context, w io.Writer) (wire.TreeResult, error) {
		return l.a.Files(ctx, args, w)
	}), nil
}

// localRing buffers a local stream, so the producer (reading files) and the consumer overlap.
const localRing = 4 << 20

// stream runs produce in a goroutine behind a ring buffer.
func (l *local) stream(ctx context.Context, produce func(context.Context, io.Writer) (wire.TreeResult, error)) TarStream {
	ctx, cancel := context.WithCancel(ctx)
	ring := proto.NewRing(localRing)
	s := &localStream{ring: ring, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		res, err := produce(ctx, ring)
		s.res = res
		ring.CloseWithError(err)
	}()
	return s
}

func (l *local) Close() error {
	if l.cleanup != nil {
		return l.cleanup()
	}
	return nil
}

type localStream struct {
	ring   *proto.Ring
	cancel context.CancelFunc
	done   chan struct{}
	res    wire.TreeResult
}

func (s *localStream) Read(p []byte) (int, error) { return s.ring.Read(p) }

func (s *localStream) Close() error {
	s.cancel()
	s.ring.CloseRead(context.Canceled)
	<-s.done
	return nil
}

func (s *localStream) Result() wire.TreeResult {
	<-s.done
	return s.res
}

func (s *localStream) WireBytes() int64 { return 0 }
