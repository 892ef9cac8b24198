package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/internal/workdir"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/source"
	"github.com/vm2image/vm2image/pkg/vmread"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "vm2image",
		Short:         "Turn a live Linux VM into a small, layered, runnable Docker/OCI image",
		Version:       vmread.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE:          rootRun,
	}
	root.SetVersionTemplate(versionLine() + "\n")
	root.AddCommand(newInspectCmd(), newExportCmd(), newDiffCmd(), newConvertCmd(), newCacheCmd(), newVerifyCmd(), newVersionCmd(), newExperimentCmd(), newFleetCmd())
	usageArgs(root)
	return root
}

// sourceOptions are the flags every command that reads a source shares.
type sourceOptions struct {
	tokenFile   string
	fingerprint string
	plaintext   bool
	compression string
	workDir     string
	verbose     bool
	disk        diskFlags
}

func (o *sourceOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the agent's token, at least 128 bits (HOST:PORT sources; default: $VM2IMAGE_TOKEN)")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "pin the agent's TLS certificate: the SHA256:... it printed on its second line (a mismatch is refused)")
	fs.BoolVar(&o.plaintext, "insecure-plaintext", false, "talk to an agent started with --insecure-plaintext, over plain TCP: anyone on the path reads the VM's files")
	fs.StringVar(&o.compression, "wire-compression", "zstd", "compression of streams from the agent: zstd, gzip or none")
	fs.StringVar(&o.workDir, "work-dir", "", "directory for temporary files (default: the system's)")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log per-path problems")
	o.disk.AddFlags(fs)
}

// check validates the flags before any work or connection.
func (o *sourceOptions) check() error {
	_, err := convert.ParseWireCompression(o.compression)
	return asUsage(err)
}

// options turns the flags into source options.
func (o *sourceOptions) options() (source.Options, error) {
	opts := source.Options{Compression: o.compression, WorkDir: o.workDir, Plaintext: o.plaintext}
	if o.fingerprint != "" {
		fp, err := proto.ParseFingerprint(o.fingerprint)
		if err != nil {
			return opts, fmt.Errorf("--fingerprint: %w", err)
		}
		opts.Fingerprint = fp
	}
	if o.tokenFile != "" {
		tok, err := proto.ReadTokenFile(o.tokenFile)
		if err != nil {
			return opts, err
		}
		opts.Token = tok
	} else if tok := os.Getenv(envToken); tok != "" {
		if err := proto.CheckToken([]byte(tok)); err != nil {
			return opts, fmt.Errorf(envToken+": %w", err)
		}
		opts.Token = []byte(tok)
	}
	opts.Disk = o.disk.options()
	if o.verbose {
		opts.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	}
	return opts, nil
}

// open opens the source named by spec with these options. Its scratch space (a tar: source's
// unpacked root, with set-id files and device nodes) is a private directory (0700) under
// --work-dir, removed when the source is closed.
func (o *sourceOptions) open(ctx context.Context, spec string) (source.Source, error) {
	opts, err := o.options()
	if err != nil {
		return nil, err
	}
	work, err := workdir.New(o.workDir, "vm2image-work-") // a killed run's is swept
	if err != nil {
		return nil, fmt.Errorf("making a work directory: %w", err)
	}
	opts.WorkDir = work.Path()
	src, err := source.Open(ctx, spec, opts)
	if err != nil {
		work.Remove()
		return nil, err
	}
	return privateWork{src, work}, nil
}

// privateWork is a source whose work directory goes with it.
type privateWork struct {
	source.Source
	dir *workdir.Dir
}

func (p privateWork) Close() error {
	err := p.Source.Close()
	if rerr := p.dir.Remove(); err == nil {
		err = rerr
	}
	return err
}
