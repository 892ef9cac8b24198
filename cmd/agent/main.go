// Command vm2image-agent serves a VM's filesystem, packages and processes to the vm2image
// converter over TLS 1.3 with a token-authenticated, channel-bound handshake. It only reads: it
// never writes to the VM.
//
// Its first lines on stdout are machine-readable:
//
//	vm2image-agent listening on HOST:PORT
//	vm2image-agent fingerprint SHA256:<64 lowercase hex digits>   (or "vm2image-agent insecure-plaintext")
//	token: <64 hex digits>                                        (only when the token was generated)
package main

import (
	"context"
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
	"github.com/vm2image/vm2image/pkg/vmread"
)

type options struct {
	listen, tokenFile, root string
	maxRate                 int64
	maxConns                int
	idle                    time.Duration
	quiet, plaintext        bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("vm2image-agent", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "0.0.0.0:49153", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the shared token, at least 128 bits (make one with: head -c 32 /dev/urandom | base64); absent: generate one and print it")
	fs.StringVar(&o.root, "root", "/", "serve this directory as if it were /")
	fs.Int64Var(&o.maxRate, "max-rate", 0, "limit streamed data to this many bytes per second (0: no limit)")
	fs.IntVar(&o.maxConns, "max-conns", 16, "concurrent connections")
	fs.DurationVar(&o.idle, "idle-timeout", 10*time.Minute, "close connections idle for this long")
	fs.BoolVar(&o.quiet, "quiet", false, "do not log per-connection events")
	fs.BoolVar(&o.plaintext, "insecure-plaintext", false, "serve plain TCP without TLS: anyone on the path reads the VM's files and can take over the session (the converter needs --insecure-plaintext too)")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *version {
		fmt.Println("vm2image-agent", vmread.Version)
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
	a, err := vmread.New(vmread.Options{Root: o.root, Logf: logf})
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
	srv := proto.NewServer(agent.Handler(a), proto.ServerOptions{
		Token: token, Plaintext: o.plaintext, MaxConns: o.maxConns, IdleTimeout: o.idle, MaxRate: o.maxRate, Logf: logf,
	})
	fmt.Fprintf(stdout, "vm2image-agent listening on %s\n", ln.Addr())
	if o.plaintext {
		fmt.Fprintln(stdout, "vm2image-agent insecure-plaintext")
	} else {
		fmt.Fprintf(stdout, "vm2image-agent fingerprint %s\n", srv.Fingerprint())
	}
	if generated {
		fmt.Fprintf(stdout, "token: %s\n", token)
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
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
	token, err = proto.NewToken()
	return token, true, err
}
