package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/convert"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/layer"
)

type diffOptions struct {
	sourceOptions
	strategy    string
	excludes    []string
	json        bool
	output      string
	strict      bool
	keepSELinux bool
	quiet       bool
}

func newDiffCmd() *cobra.Command {
	var o diffOptions
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Compare two trees and write the OCI layer that turns OLD into NEW",
		Long: `Diff compares two sources (dir:PATH, tar:PATH, HOST:PORT) and prints the changes that turn OLD
into NEW, one per line, then statistics as the lab journal of the 2014 thesis prototype (a
Python converter with a C agent, whose published figures are vm2image's baseline; the journal is
not part of this repository) counted them: entries and bytes added, modified, deleted and
metadata-only, the layer's size and, with the rdiff strategy, the total
size of the block deltas. With -o it writes the layer: an uncompressed OCI layer tar with
whiteouts for deletions and opaque directories for replaced ones, written atomically.

Strategies: checksum, the default as in convert (content digests: an mtime-only difference is
no change, a same-size edit that kept its mtime is one), rsync (rsync's quick check: type, size,
mtime; faster, blind to such edits), rdiff (checksum plus librsync-compatible block deltas).

Change lines: "+" added, "M" modified, "m" metadata only, "-" deleted, "T" type changed,
"R" directory replaced (opaque).`,
		Example: `  vm2image diff dir:/srv/base dir:/srv/vm --strategy checksum -o vm.layer.tar
  vm2image diff tar:base.tar.gz 10.0.0.5:49153 --token-file token --strategy rdiff --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiff(cmd.Context(), o, args[0], args[1], cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&o.strategy, "strategy", string(convert.DefaultStrategy), "checksum, rsync or rdiff")
	f.StringArrayVar(&o.excludes, "exclude", nil, "anchored glob of paths to leave out of both trees (repeatable)")
	f.BoolVar(&o.json, "json", false, "print the changes, statistics and layer figures as JSON")
	f.StringVarP(&o.output, "output", "o", "", "write the OCI layer tar to this file")
	f.BoolVar(&o.strict, "strict", false, "stop at the first unreadable or vanishing file")
	f.BoolVar(&o.keepSELinux, "keep-selinux", false, "compare and keep security.selinux labels (dropped by default)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print the statistics only")
	return cmd
}

// DiffReport is what diff prints with --json.
type DiffReport struct {
	Old      string            `json:"old"`
	New      string            `json:"new"`
	Strategy diff.Strategy     `json:"strategy"`
	Stats    diff.Stats        `json:"stats"`
	Layer    *layer.LayerStats `json:"layer,omitempty"`
	Problems []diff.Problem    `json:"problems,omitempty"`
	Changes  []diff.Change     `json:"changes"`
	Seconds  float64           `json:"seconds"`
}

func runDiff(ctx context.Context, o diffOptions, oldSpec, newSpec string, out io.Writer) error {
	strategy, err := convert.ParseStrategy(o.strategy)
	if err != nil {
		return asUsage(err)
	}
	if err := o.check(); err != nil {
		return err
	}
	for _, spec := range []string{oldSpec, newSpec} {
		if err := checkSourceSpec(spec); err != nil {
			return err
		}
	}
	if err := checkOutputDir("-o", o.output); err != nil {
		return err
	}
	start := time.Now()
	old, err := o.open(ctx, oldSpec)
	if err != nil {
		return err
	}
	defer old.Close()
	nw, err := o.open(ctx, newSpec)
	if err != nil {
		return err
	}
	defer nw.Close()
	res, err := diff.Trees(ctx, old, nw, diff.Options{
		Strategy: strategy, Excludes: o.excludes, Strict: o.strict, KeepSELinux: o.keepSELinux,
	})
	if err != nil {
		return fmt.Errorf("comparing %s with %s: %w", oldSpec, newSpec, err)
	}
	rep := &DiffReport{Old: oldSpec, New: newSpec, Strategy: res.Strategy, Stats: res.Stats, Problems: res.Problems, Changes: res.Changes}
	if o.output != "" {
		var ls layer.LayerStats
		_, err := writeAtomic(o.output, nil, func(w io.Writer) (int64, error) {
			bw := bufio.NewWriterSize(w, 1<<20)
			var err error
			if ls, err = layer.Write(ctx, bw, res, nw, layer.Options{KeepSELinux: o.keepSELinux, Strict: o.strict}); err != nil {
				return 0, err
			}
			return ls.Bytes, bw.Flush()
		})
		if err != nil {
			return fmt.Errorf("writing layer %s: %w", o.output, err)
		}
		rep.Layer = &ls
		rep.Problems = append(rep.Problems, ls.Problems...)
	}
	rep.Seconds = time.Since(start).Seconds()
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	bw := bufio.NewWriter(out)
	defer bw.Flush()
	if !o.quiet {
		for _, c := range res.Changes {
			fmt.Fprintf(bw, "%s %s\n", changeMark[c.Kind], displayPath(c.Path))
		}
	}
	printDiffStats(bw, rep)
	return nil
}

var changeMark = map[diff.Kind]string{
	diff.Added: "+", diff.Modified: "M", diff.Metadata: "m", diff.Deleted: "-", diff.TypeChanged: "T", diff.DirReplaced: "R",
}

func printDiffStats(w io.Writer, r *DiffReport) {
	s := r.Stats
	fmt.Fprintf(w, "\n%s diff of %s (%d entries) -> %s (%d entries) in %.2fs\n", r.Strategy, r.Old, s.OldEntries, r.New, s.NewEntries, r.Seconds)
	fmt.Fprintf(w, "  added:         %8d entries  %s\n", s.Added, units.IEC(s.AddedBytes))
	fmt.Fprintf(w, "  modified:      %8d entries  %s\n", s.Modified, units.IEC(s.ModifiedBytes))
	fmt.Fprintf(w, "  metadata only: %8d entries  %s rewritten\n", s.Metadata, units.IEC(s.MetadataBytes))
	fmt.Fprintf(w, "  deleted:       %8d entries  %s\n", s.Deleted, units.IEC(s.DeletedBytes))
	fmt.Fprintf(w, "  type changed:  %8d   directories replaced: %d   sockets skipped: %d\n", s.TypeChanged, s.DirReplaced, s.SocketsSkipped)
	if r.Strategy == diff.Rdiff {
		fmt.Fprintf(w, "  block deltas:  %s\n", units.IEC(s.DeltaBytes))
	}
	if r.Layer != nil {
		fmt.Fprintf(w, "  layer:         %s, %d entries (%d whiteouts, %d opaque), %s\n", units.IEC(r.Layer.Bytes), r.Layer.Entries, r.Layer.Whiteouts, r.Layer.Opaques, r.Layer.DiffID)
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "  problems:      %d (first: %s: %s)\n", max(s.Problems, int64(len(r.Problems))), displayPath(r.Problems[0].Path), r.Problems[0].Err)
	}
}

// displayPath prints a path as is when that is unambiguous, quoted (Go syntax) when it holds
// newlines, control characters or bytes that are not UTF-8.
func displayPath(p string) string {
	if q := strconv.Quote(p); q[1:len(q)-1] != p {
		return q
	}
	return p
}
