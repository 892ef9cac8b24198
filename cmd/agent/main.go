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
	"fmt"
	"io"
	"io/fs"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(execute(ctx, os.Args[1:], os.Stdout, os.Stderr, run))
}

func run(ctx context.Context, o options, stdout io.Writer) error {
	token, generated, err := loadToken(o.tokenFile)
	if err != nil {
		return err
	}
	logger := log.New(os.Stderr, "vm2image-agent: ", log.LstdFlags)
	if warn := tokenFileWarning(o.tokenFile); warn != "" {
		logger.Print(warn)
	}
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

// tokenFileWarning says when the token file can be read by users other than its owner: any of
// them can then talk to the agent and read the whole VM.
func tokenFileWarning(file string) string {
	if file == "" {
		return ""
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm()&0o044 == 0 {
		return ""
	}
	return fmt.Sprintf("warning: token file %s is readable by group or others (mode %04o): anyone who reads it can read this VM; chmod 600 %s",
		file, fi.Mode().Perm()&fs.ModePerm, file)
}
