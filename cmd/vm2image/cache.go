package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vm2image/vm2image/internal/units"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vm2image/vm2image/pkg/cache"
)

// cacheOptions are the flags of the cache commands.
type cacheOptions struct {
	dir string
}

func (o *cacheOptions) AddFlags(fs *pflag.FlagSet) { addCacheDirFlag(fs, &o.dir) }

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List and prune the caches: packages layers, unpacked roots, base image blobs, apt archives",
		Long: `One cache root (--cache-dir, default /var/cache/vm2image) holds every cache kind in a
subdirectory: layers (packages layers, keyed by base image, package set and repository
configuration), roots (unpacked base images, and bases with a packages layer applied), images
(base image layer blobs and downloaded root filesystems) and apt-archives (downloaded .deb
files). Concurrent conversions share them safely; an entry a conversion uses is in use until it
ends and is never pruned. The root and its kinds are private (0700): unpacked roots hold set-id
files and device nodes that no other user may reach.`,
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
		Short: "List the entries of every cache kind: size, last use, in use",
		Example: `  vm2image cache ls
  vm2image cache ls --cache-dir /srv/vm2image --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCacheLs(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// cacheListing is what `cache ls --json` prints.
type cacheListing struct {
	Root    string        `json:"root"`
	Kinds   []kindTotal   `json:"kinds"`
	Entries []cache.Entry `json:"entries"`
}

type kindTotal struct {
	Kind    cache.Kind `json:"kind"`
	Path    string     `json:"path"`
	Entries int        `json:"entries"`
	Size    int64      `json:"size"`
}

func runCacheLs(_ context.Context, o cacheLsOptions, out io.Writer) error {
	root := cache.RootOrDefault(o.dir)
	if err := root.Tighten(noteTo(os.Stderr)); err != nil {
		return err
	}
	entries, err := root.List()
	if err != nil {
		return err
	}
	l := cacheListing{Root: string(root), Entries: entries}
	if l.Entries == nil {
		l.Entries = []cache.Entry{}
	}
	for _, k := range cache.Kinds {
		t := kindTotal{Kind: k, Path: root.Path(k)}
		for _, e := range entries {
			if e.Kind == k {
				t.Entries++
				t.Size += e.Size
			}
		}
		l.Kinds = append(l.Kinds, t)
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	now := time.Now()
	if len(entries) > 0 {
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tKEY\tSIZE\tLAST USED\tIN USE")
		for _, e := range entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", e.Kind, shortKey(e.Key), units.IEC(e.Size), age(now.Sub(e.LastUsed)), yesNo(e.InUse))
		}
		tw.Flush()
	}
	var total int64
	for _, t := range l.Kinds {
		total += t.Size
		fmt.Fprintf(out, "%-13s %4d entries, %s\n", t.Kind+":", t.Entries, units.IEC(t.Size))
	}
	fmt.Fprintf(out, "%d entries, %s in %s\n", len(entries), units.IEC(total), root)
	return nil
}

func shortKey(k string) string {
	if len(k) > 40 {
		return k[:40] + "…"
	}
	return k
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// age prints a duration the way people say it: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
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
		Short: "Remove cache entries unused for a while, or the least recently used until the cache fits a size",
		Long: `Prune removes the entries of every kind not used for longer than --older-than, then the least
recently used entries, of any kind, until the whole cache holds at most --max-size. An entry a
conversion is building or using (or a store it holds) is never removed. Without either flag,
prune removes only what dead builds left behind.`,
		Example: `  vm2image cache prune --older-than 30d
  vm2image cache prune --max-size 20G
  vm2image cache prune --older-than 12h --max-size 500M --cache-dir /srv/vm2image`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCachePrune(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&o.olderThan, "older-than", "", "remove entries not used for longer than this (90m, 12h, 30d)")
	cmd.Flags().StringVar(&o.maxSize, "max-size", "", "then remove the least recently used entries until the cache holds at most this (bytes, or 500M, 20G)")
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
	root := cache.RootOrDefault(o.dir)
	if err := root.Tighten(noteTo(os.Stderr)); err != nil {
		return err
	}
	removed, err := root.Prune(cache.PruneOptions{OlderThan: age, MaxSize: size})
	var freed int64
	for _, e := range removed {
		freed += e.Size
		fmt.Fprintf(out, "removed %s %s (%s, last used %s)\n", e.Kind, shortKey(e.Key), units.IEC(e.Size), e.LastUsed.Local().Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(out, "%d entries removed, %s freed\n", len(removed), units.IEC(freed))
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
