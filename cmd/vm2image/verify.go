package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/internal/progress"
	"github.com/vm2image/vm2image/pkg/cache"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/verify"
)

type verifyOptions struct {
	sourceOptions
	progressOptions
	excludes    []string
	run         bool
	runTimeout  time.Duration
	runStayUp   time.Duration
	runExec     bool
	json        bool
	maxDiffs    int
	keepSELinux bool
	noPackages  bool
	cacheDir    string
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify IMAGE SOURCE",
		Short: "Prove an image holds what its VM holds",
		Long: `Verify flattens IMAGE's layers as a stream (whiteouts and opaque directories applied, nothing
unpacked to disk) and compares it with SOURCE under the excludes the conversion used (the
image's org.vm2image.excludes label) plus --exclude and the runtime's /.vm2image: paths, types,
modes, owners, sizes, contents (sha256 digests computed by the agent on the VM), symlink
targets, hard-link groups, device numbers, extended attributes (security.selinux aside), and the
installed packages (name, version, arch). Modification times are not compared. With --run it
also starts the image in the Docker engine and checks that every TCP port the VM listened on
accepts connections and answers GET / as the VM does.

IMAGE is a docker-archive file, oci:DIR[:TAG], docker-daemon:REF, docker-archive:FILE, or a
reference looked up in the Docker engine, then its registry.

Exit status: 0 when equal, 1 when different, 2 on error.`,
		Example: `  vm2image verify web.tar 10.0.0.5:49153 --token-file token
  vm2image verify oci:web.oci:latest 10.0.0.5:49153 --token-file token --json > verify.json
  vm2image verify docker-daemon:web:converted 10.0.0.5:49153 --token-file token --run
  vm2image verify web.tar dir:/srv/vm-root --exclude '/var/log/*'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), o, args[0], args[1], cmd.OutOrStdout())
		},
	}
	o.sourceOptions.AddFlags(cmd.Flags())
	o.progressOptions.AddFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringArrayVar(&o.excludes, "exclude", nil, "anchored glob of paths to leave out (repeatable; added to the conversion's)")
	f.BoolVar(&o.run, "run", false, "also start the image and check the VM's ports")
	f.DurationVar(&o.runTimeout, "run-timeout", 30*time.Second, "how long the ports have to accept connections with --run")
	f.DurationVar(&o.runStayUp, "run-stay-up", 5*time.Second, "with --run, how long the container must keep running from its start (also when the VM listened on no port)")
	f.BoolVar(&o.runExec, "run-exec", false, "with --run, reach loopback ports with docker exec rather than the container's network namespace")
	f.BoolVar(&o.json, "json", false, "print the whole report as JSON")
	f.IntVar(&o.maxDiffs, "max-diffs", 20, "differences to print (all with --json)")
	f.BoolVar(&o.keepSELinux, "keep-selinux", false, "compare security.selinux labels too")
	f.BoolVar(&o.noPackages, "no-packages", false, "do not compare the installed packages")
	addCacheDirFlag(f, &o.cacheDir)
	return cmd
}

// The phases verify shows.
const (
	phaseVerifyOpen    = "open"
	phaseVerifyCompare = "compare"
	phaseVerifyRun     = "run"
)

// memoryLimit is the soft limit verify runs under (unless GOMEMLIMIT says otherwise): the
// flattened image takes about 135 bytes per entry, and the collector works harder near the limit
// rather than let the heap double, so a million entries stay under 256 MiB of resident memory.
const memoryLimit = 200 << 20

// runVerify verifies and prints; a difference is an *exitError of code 1, an error of code 2.
func runVerify(ctx context.Context, o verifyOptions, imageRef, spec string, out io.Writer) error {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	if err := checkVerifyArgs(o, imageRef, spec); err != nil {
		return &exitError{code: 2, err: err}
	}
	d := o.display(os.Stderr)
	rep, err := verifyImage(ctx, o, imageRef, spec, d)
	d.Close()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		printVerify(out, imageRef, spec, rep, o.maxDiffs)
	}
	if !rep.Equal {
		return &exitError{code: 1}
	}
	return nil
}

func verifyImage(ctx context.Context, o verifyOptions, imageRef, spec string, d *progress.Display) (rep *verify.Report, err error) {
	current := ""
	next := func(name string) { // ends the current phase (it succeeded) and starts name
		if current != "" {
			d.Done(current, nil)
		}
		current = name
		d.Phase(name)
	}
	defer func() { d.Done(current, err) }()
	next(phaseVerifyOpen)
	// The image store is held while verify reads blobs from it: a prune leaves it alone.
	root := cache.RootOrDefault(o.cacheDir)
	hold, err := root.UseStore(ctx, cache.Images, noteTo(os.Stderr))
	if err != nil {
		return nil, err
	}
	defer hold.Release()
	target, err := openImage(ctx, imageRef, root.Path(cache.Images))
	if err != nil {
		return nil, err
	}
	defer target.close()
	src, err := o.open(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	opts := verify.Options{Excludes: o.excludes, KeepSELinux: o.keepSELinux, NoPackages: o.noPackages}
	if !o.quiet {
		opts.Progress = func(done, total int64) { d.Bytes(phaseVerifyCompare, done, total) }
	}
	next(phaseVerifyCompare)
	if target.engineRef != "" {
		rep, err = verify.EngineImage(ctx, target.engine, target.engineRef, src, opts)
	} else {
		rep, err = verify.Image(ctx, target.img, src, opts)
	}
	if err != nil {
		return nil, err
	}
	if o.run {
		next(phaseVerifyRun)
		ro := verify.RunOptions{Ref: target.engineRef, Timeout: o.runTimeout, ExecProbe: o.runExec, StayUp: o.runStayUp}
		rr, err := verify.Run(ctx, target.img, src, ro)
		if err != nil {
			return nil, fmt.Errorf("running the image: %w", err)
		}
		rep.AddRun(rr)
	}
	return rep, nil
}

// checkVerifyArgs checks the flags, the source and an image given as a file path before any
// work: a path that does not exist is said so, not looked up in a registry.
func checkVerifyArgs(o verifyOptions, imageRef, spec string) error {
	if err := o.sourceOptions.check(); err != nil {
		return err
	}
	if err := o.progressOptions.check(); err != nil {
		return err
	}
	if err := checkSourceSpec(spec); err != nil {
		return err
	}
	if looksLikePath(imageRef) {
		if _, err := os.Stat(imageRef); err != nil {
			return fmt.Errorf("reading image %s: %w", imageRef, noSuchFile(imageRef, err))
		}
	}
	for _, t := range []string{image.TransportArchive + ":", image.TransportOCI + ":"} {
		if rest, ok := strings.CutPrefix(imageRef, t); ok && !existsWithOrWithoutRef(rest) {
			return fmt.Errorf("reading image %s: %s does not exist", imageRef, rest)
		}
	}
	return nil
}

// existsWithOrWithoutRef says whether FILE[:REF] names an existing file or directory: the
// whole of it, or the part before its last colon.
func existsWithOrWithoutRef(s string) bool {
	if _, err := os.Stat(s); err == nil {
		return true
	}
	if i := strings.LastIndex(s, ":"); i > 0 {
		_, err := os.Stat(s[:i])
		return err == nil
	}
	return false
}

// looksLikePath says whether an image argument without a transport is a file path rather than
// an image reference: it starts with / . or ~, or ends like an archive.
func looksLikePath(ref string) bool {
	if hasTransport(ref) {
		return false
	}
	for _, p := range []string{"/", "./", "../", "~"} {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	for _, s := range []string{".tar", ".tar.gz", ".tgz", ".tar.zst"} {
		if strings.HasSuffix(ref, s) {
			return true
		}
	}
	return false
}

// imageTarget is the image to verify: in the Docker engine (read as it saves it, streaming),
// or resolved to layers that can be read in order.
type imageTarget struct {
	img       v1.Image
	engine    image.EngineClient
	engineRef string
}

func (t *imageTarget) close() {
	if c, ok := t.engine.(io.Closer); ok {
		c.Close()
	}
}

// openImage finds the image: docker-daemon:REF and plain references the engine holds are read
// from the engine; the rest (and plain references it lacks) through image.Resolve.
func openImage(ctx context.Context, ref, cacheDir string) (*imageTarget, error) {
	ref = imageReference(ref)
	daemonRef, isDaemon := strings.CutPrefix(ref, image.TransportDaemon+":")
	if isDaemon || !hasTransport(ref) {
		if !isDaemon {
			daemonRef = ref
		}
		eng, err := image.NewEngine(ctx)
		if err == nil {
			t := &imageTarget{engine: eng, engineRef: daemonRef}
			if _, err = eng.ImageInspect(ctx, daemonRef); err == nil {
				return t, nil
			}
			t.close()
		}
		if isDaemon {
			return nil, fmt.Errorf("reading image %s: %w", ref, err)
		}
	}
	base, err := image.Resolve(ctx, ref, image.ResolveOptions{CacheDir: cacheDir})
	if err != nil {
		return nil, imageError(ref, err)
	}
	return &imageTarget{img: base.Image}, nil
}

// imageError says why the image could not be read, without Resolve's talk of base images.
func imageError(ref string, err error) error {
	var re *image.ResolveError
	if !errors.As(err, &re) {
		return err
	}
	if len(re.Attempts) == 1 {
		return fmt.Errorf("reading image %s: %w", ref, re.Attempts[0].Err)
	}
	var tried []string
	for _, a := range re.Attempts {
		tried = append(tried, fmt.Sprintf("%s: %v", a.Place, a.Err))
	}
	return fmt.Errorf("reading image %s: %s", ref, strings.Join(tried, "; "))
}

// transports are the prefixes image.Resolve knows.
var transports = []string{"docker-daemon:", "oci:", "docker-archive:", "registry://", "docker://", "http://", "https://"}

func hasTransport(ref string) bool {
	for _, t := range transports {
		if strings.HasPrefix(ref, t) {
			return true
		}
	}
	return false
}

// imageReference gives a bare path the transport it names: a file is a docker-archive, a
// directory with an oci-layout file an OCI layout.
func imageReference(ref string) string {
	if hasTransport(ref) {
		return ref
	}
	fi, err := os.Stat(ref)
	switch {
	case err != nil:
		return ref
	case fi.Mode().IsRegular():
		return image.TransportArchive + ":" + ref
	case fi.IsDir():
		if _, err := os.Stat(filepath.Join(ref, "oci-layout")); err == nil {
			return image.TransportOCI + ":" + ref
		}
	}
	return ref
}

func printVerify(w io.Writer, imageRef, spec string, r *verify.Report, max int) {
	verdict := "EQUAL"
	if !r.Equal {
		verdict = fmt.Sprintf("DIFFERENT (%d differences)", total(r.Counts))
	}
	fmt.Fprintf(w, "verify %s against %s: %s\n", imageRef, spec, verdict)
	fmt.Fprintf(w, "  vm:    %d entries, %d packages\n", r.VMEntries, r.Packages.VM)
	fmt.Fprintf(w, "  image: %d entries, %d packages\n", r.ImageEntries, r.Packages.Image)
	fmt.Fprintf(w, "  excludes: %s\n", strings.Join(r.Excludes, " "))
	if len(r.Counts) > 0 {
		var kinds []string
		for k, n := range r.Counts {
			kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(w, "  counts: %s\n", strings.Join(kinds, ", "))
	}
	if rr := r.Run; rr != nil {
		fmt.Fprintf(w, "  run: %s", rr.Image)
		for _, p := range rr.Ports {
			state := "accepts"
			if !p.Accepts {
				state = "REFUSED"
			}
			fmt.Fprintf(w, "; tcp/%d %s", p.Port, state)
			if p.HTTP == "same" || p.HTTP == "differs" {
				fmt.Fprintf(w, ", GET / %s", p.HTTP)
			}
		}
		fmt.Fprintln(w)
	}
	printDifferences(w, r.Differences, max)
	for _, n := range append(r.Notes, runNotes(r)...) {
		fmt.Fprintf(w, "  note: %s\n", strings.ReplaceAll(n, "\n", "\n        "))
	}
	fmt.Fprintf(w, "  %.2fs\n", r.Seconds)
}

func printDifferences(w io.Writer, ds []verify.Difference, max int) {
	if len(ds) == 0 {
		return
	}
	if max > 0 && len(ds) > max {
		fmt.Fprintf(w, "  first %d differences:\n", max)
		ds = ds[:max]
	} else {
		fmt.Fprintln(w, "  differences:")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range ds {
		fmt.Fprintf(tw, "    %s\t%s\tvm: %s\timage: %s\n", d.Kind, d.Path, orNone(d.VM), orNone(d.Image))
	}
	tw.Flush()
}

func runNotes(r *verify.Report) []string {
	if r.Run == nil {
		return nil
	}
	return r.Run.Notes
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func total(c map[verify.Kind]int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}
