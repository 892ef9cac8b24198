// Command vm2image-agent serves a VM's filesystem, packages and processes to the vm2image
// converter over an authenticated TCP protocol. It only reads: it never writes to the VM.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/vm2image/vm2image/pkg/agent"
	"github.com/vm2image/vm2image/pkg/proto"
)

type options struct {
	listen, tokenFile, root string
	maxRate                 int64
	maxConns                int
	idle                    time.Duration
	quiet                   bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("vm2image-agent", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "0.0.0.0:49153", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the shared token (absent: generate one and print it)")
	fs.StringVar(&o.root, "root", "/", "serve this directory as if it were /")
	fs.Int64Var(&o.maxRate, "max-rate", 0, "limit streamed data to this many bytes per second (0: no limit)")
	fs.IntVar(&o.maxConns, "max-conns", 16, "concurrent connections")
	fs.DurationVar(&o.idle, "idle-timeout", 10*time.Minute, "close connections idle for this long")
	fs.BoolVar(&o.quiet, "quiet", false, "do not log per-connection events")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *version {
		fmt.Println("vm2image-agent", agent.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		log.SetFlags(0)
		log.Fatalf("vm2image-agent: %v", err)
	}
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	token, generated, err := loadToken(o.tokenFile)
	if err != nil {
		return err
	}
	logger := log.New(os.Stderr, "vm2image-agent: ", log.LstdFlags)
	logf := logger.Printf
	if o.quiet {
		logf = func(string, ...any) {}
	}
	a, err := agent.New(agent.Options{Root: o.root, Logf: logf})
	if err != nil {
		return err
	}
	beGentle()
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the GC works harder rather than let the agent grow on a production VM.
		debug.SetMemoryLimit(48 << 20)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	fmt.Fprintf(stdout, "vm2image-agent listening on %s\n", ln.Addr())
	if generated {
		fmt.Fprintf(stdout, "token: %s\n", token)
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	srv := proto.NewServer(a.Handler(), proto.ServerOptions{
		Token: token, MaxConns: o.maxConns, IdleTimeout: o.idle, MaxRate: o.maxRate, Logf: logf,
	})
	err = srv.Serve(ctx, ln)
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func loadToken(file string) (token []byte, generated bool, err error) {
	if file != "" {
		token, err = proto.ReadTokenFile(file)
		return token, false, err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, false, err
	}
	return []byte(hex.EncodeToString(b)), true, nil
}
