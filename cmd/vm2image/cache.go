package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vm2image/vm2image/internal/units"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/pkg/builder"
)

// cacheOptions are the flags of the cache commands.
type cacheOptions struct {
	dir string
}

func (o *cacheOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dir, "cache-dir", builder.DefaultCacheDir, "the packages layer cache")
}

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List and prune the cache of packages layers",
		Long: `The cache holds the packages layers that conversions built, keyed by base image, package
manager, package set and repository configuration: conversions of VMs with the same packages
reuse one layer. Concurrent conversions share it safely.`,
		Example: `  vm2image cache ls
  vm2image cache prune --older-than 30d --max-size 20G`,
	}
	cmd.AddCommand(newCacheLsCmd(), newCachePruneCmd())
	return cmd
}

type cacheLsOptions struct {
	cacheOptions
	json bool
}

func newCacheLsCmd() *cobra.Command {
	var o cacheLsOptions
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the cached packages layers",
		Example: `  vm2image cache ls
  vm2image cache ls --cache-dir /srv/vm2image/layers --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCacheLs(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func runCacheLs(_ context.Context, o cacheLsOptions, out io.Writer) error {
	entries, err := builder.List(o.dir)
	if err != nil {
		return err
	}
	if o.json {
		if entries == nil {
			entries = []builder.Entry{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	if len(entries) == 0 {
		fmt.Fprintf(out, "no packages layers in %s\n", o.dir)
		return nil
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tCREATED\tSIZE\tPACKAGES\tMANAGER\tBASE")
	var total int64
	for _, e := range entries {
		total += e.Size
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", e.Key[:min(12, len(e.Key))], e.Created.Local().Format("2006-01-02 15:04"),
			units.IEC(e.Size), e.Packages, e.Manager, e.BaseDigest)
	}
	tw.Flush()
	fmt.Fprintf(out, "%d layers, %s in %s\n", len(entries), units.IEC(total), o.dir)
	return nil
}

type cachePruneOptions struct {
	cacheOptions
	olderThan string
	maxSize   string
}

func newCachePruneCmd() *cobra.Command {
	var o cachePruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove old packages layers, or the oldest until the cache fits a size",
		Long: `Prune removes the layers created longer ago than --older-than, then the oldest layers until
the cache holds at most --max-size. A layer that a conversion is building or using is never
removed. Without either flag, prune removes only what dead builds left behind.`,
		Example: `  vm2image cache prune --older-than 30d
  vm2image cache prune --max-size 20G
  vm2image cache prune --older-than 12h --max-size 500M --cache-dir /srv/vm2image/layers`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCachePrune(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.olderThan, "older-than", "", "remove layers older than this (90m, 12h, 30d)")
	cmd.Flags().StringVar(&o.maxSize, "max-size", "", "then remove the oldest layers until the cache holds at most this (bytes, or 500M, 20G)")
	return cmd
}

func runCachePrune(_ context.Context, o cachePruneOptions, out io.Writer) error {
	age, err := parseAge(o.olderThan)
	if err != nil {
		return err
	}
	size, err := parseByteSize(o.maxSize)
	if err != nil {
		return err
	}
	removed, err := builder.Prune(o.dir, age, size)
	var freed int64
	for _, e := range removed {
		freed += e.Size
		fmt.Fprintf(out, "removed %s (%s, created %s)\n", e.Key[:min(12, len(e.Key))], units.IEC(e.Size), e.Created.Local().Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(out, "%d layers removed, %s freed\n", len(removed), units.IEC(freed))
	return err
}

// parseAge parses a duration with a "d" (days) unit besides time.ParseDuration's; "" is 0.
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("parsing --older-than %q: want a number of days like 30d", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("parsing --older-than %q: want a duration like 90m, 12h or 30d", s)
	}
	return d, nil
}

// parseByteSize parses bytes with an optional K, M, G or T suffix (powers of 1024, "iB" and
// "B" accepted); "" is 0.
func parseByteSize(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if i := strings.IndexAny(num, "KMGT"); i >= 0 && i == len(num)-1 {
		mult = int64(1) << (10 * (strings.IndexByte("KMGT", num[i]) + 1))
		num = num[:i]
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("parsing --max-size %q: want bytes, or a size like 500M or 20G", s)
	}
	return int64(n * float64(mult)), nil
}
