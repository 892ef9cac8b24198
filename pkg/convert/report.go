package convert

import (
	"github.com/vm2image/vm2image/pkg/agent"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// Phases of a conversion, in order.
const (
	PhaseConnect  = "connect"
	PhaseBase     = "base"
	PhasePackages = "packages"
	PhaseDiff     = "diff"
	PhaseRuntime  = "runtime"
	PhaseAssemble = "assemble"
)

// Report holds every figure of a conversion: those of the 2014 journal's tables and more.
type Report struct {
	Source       string  `json:"source"`
	OS           string  `json:"os"`
	Arch         string  `json:"arch"`
	AgentVersion string  `json:"agent_version,omitempty"`
	Strategy     string  `json:"strategy"`
	Transfer     string  `json:"transfer"`
	Seconds      float64 `json:"seconds"`

	OriginalBytes   int64 `json:"original_bytes"`   // regular files of the VM's tree (after excludes)
	OriginalEntries int64 `json:"original_entries"` // entries of the VM's tree
	Base            Base  `json:"base"`

	Packages *Packages `json:"packages,omitempty"`

	Diff      diff.Stats        `json:"diff"`
	DiffLayer *layer.LayerStats `json:"diff_layer,omitempty"`
	Problems  []diff.Problem    `json:"problems,omitempty"`

	// BytesTransferred crossed the wire from the agent (compressed); 0 for local sources.
	BytesTransferred int64 `json:"bytes_transferred"`
	// LocalContentBytes are file contents taken from the converter's own trees instead.
	LocalContentBytes int64 `json:"local_content_bytes"`

	Services []string `json:"services"`
	Ports    []string `json:"ports,omitempty"`
	// ServiceSources says, per service, whether its systemd unit or its process described it;
	// SkippedServices are the VM's services left out, with the reason.
	ServiceSources  []ServiceSource `json:"service_sources,omitempty"`
	SkippedServices []ServiceSource `json:"skipped_services,omitempty"`

	Image  ImageReport `json:"image"`
	Phases []PhaseTime `json:"phases"`
}

// Base describes the base image used.
type Base struct {
	Ref       string   `json:"ref"`
	Transport string   `json:"transport"`
	Digest    string   `json:"digest"`
	Bytes     int64    `json:"bytes"` // compressed size of its layers
	Tried     []string `json:"tried,omitempty"`
}

// Packages are the figures of the packages layer.
type Packages struct {
	VM             int             `json:"vm"`
	Base           int             `json:"base"`
	InstallSet     int             `json:"install_set"`
	RootsBefore    int             `json:"roots_before"` // the journal's "183 -> 109"
	RootsAfter     int             `json:"roots_after"`
	Installed      int             `json:"installed"`
	Missing        []string        `json:"missing,omitempty"`
	VersionDiffers []pkgmgr.Change `json:"version_differs,omitempty"`
	LayerBytes     int64           `json:"layer_bytes"`
	LayerDiffID    string          `json:"layer_diff_id,omitempty"`
	CacheHit       bool            `json:"cache_hit"`
	CacheKey       string          `json:"cache_key,omitempty"`
	Errors         []string        `json:"errors,omitempty"`
	Skipped        string          `json:"skipped,omitempty"` // why there is no packages layer
	InstallSeconds float64         `json:"install_seconds"`
	Manager        pkgmgr.Manager  `json:"manager,omitempty"`
}

// ImageReport describes the written image.
type ImageReport struct {
	Tag          string       `json:"tag"`
	Digest       string       `json:"digest"`
	Bytes        int64        `json:"bytes"` // compressed: config + every layer
	Layers       []LayerSizes `json:"layers"`
	Output       string       `json:"output,omitempty"`
	Format       string       `json:"format,omitempty"`
	Loaded       bool         `json:"loaded,omitempty"`
	Pushed       string       `json:"pushed,omitempty"`
	ContextFiles []string     `json:"context_files,omitempty"` // Dockerfile, services.yaml, compose.yaml
}

// LayerSizes are one layer's figures.
type LayerSizes struct {
	Role       string `json:"role"` // base, packages, vm-diff, runtime
	Digest     string `json:"digest"`
	DiffID     string `json:"diff_id"`
	Compressed int64  `json:"compressed_bytes"`
}

// PhaseTime is how long a phase took.
type PhaseTime struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

func newReport(o Options) *Report {
	return &Report{Source: o.Source, Strategy: string(o.Strategy), Transfer: o.Transfer, Services: []string{}}
}

func (r *Report) setSource(info *agent.Info) {
	r.OS = info.OS.ID + " " + info.OS.VersionID
	r.Arch = info.Arch
	r.AgentVersion = info.AgentVersion
}

// ServiceSource is one service of the report.
type ServiceSource struct {
	Name   string `json:"name"`
	Source string `json:"source,omitempty"` // unit or process
	Unit   string `json:"unit,omitempty"`
	Reason string `json:"reason,omitempty"` // why it was skipped
}
