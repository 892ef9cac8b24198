package convert

import (
	"time"

	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/fit"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/layer"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
	"github.com/vm2image/vm2image/pkg/services"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Phases of a conversion, in order.
const (
	PhaseConnect  = "connect"
	PhaseBase     = "base"
	PhasePackages = "packages"
	PhaseDiff     = "diff"
	PhaseRuntime  = "runtime"
	PhaseAssemble = "assemble"
	// PhaseOutput is the check and lock of the output paths, before any other phase.
	PhaseOutput = "output"
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

	// Error and FailedPhase say why and where a failed conversion stopped; the figures of the
	// phases after it are zero.
	Error       string `json:"error,omitempty"`
	FailedPhase string `json:"failed_phase,omitempty"`

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

	// Fit is the container-fit assessment (docs/fit.md); Volumes the directories moved into
	// volumes (--volume, --volumes auto).
	Fit     *fit.Report `json:"fit,omitempty"`
	Volumes []Volume    `json:"volumes,omitempty"`

	Services []string `json:"services"`
	Ports    []string `json:"ports,omitempty"`
	// ServiceEnvLeftOut names (never the values of) the service environment variables left out
	// of the image: only allowed ones enter it unless Options.KeepServiceEnv.
	ServiceEnvLeftOut []services.EnvLeftOut `json:"service_env_left_out,omitempty"`
	// ServiceEnvKept says every service's whole environment is in the image (KeepServiceEnv).
	ServiceEnvKept bool `json:"service_env_kept,omitempty"`
	// SecretFiles are the files the image's own layers hold that carry private keys or
	// password hashes: what a push publishes.
	SecretFiles []SecretFile `json:"secret_files,omitempty"`
	// ServiceSources says, per service, whether its systemd unit or its process described it;
	// SkippedServices are the VM's services left out, with the reason.
	ServiceSources  []ServiceSource `json:"service_sources,omitempty"`
	SkippedServices []ServiceSource `json:"skipped_services,omitempty"`

	Image  ImageReport `json:"image"`
	Phases []PhaseTime `json:"phases"`

	// RegistryCache are the registry cache's figures (--cache-repo).
	RegistryCache *RegistryCache `json:"registry_cache,omitempty"`
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
	VM         int `json:"vm"`
	VMRoots    int `json:"vm_roots"` // roots of the VM's graph (Recommends not edges): inspect's figure
	Base       int `json:"base"`
	InstallSet int `json:"install_set"`
	// RootsBefore is the install set (the VM's packages the base lacks), RootsAfter the names
	// the installer is given (the set's roots in the VM's graph): the journal's "183 -> 109".
	RootsBefore    int             `json:"roots_before"`
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
	// Installer says how the packages layer was installed: in the base root by its own
	// installer, or from outside it by the host's (a base without a package manager).
	Installer string `json:"installer,omitempty"`
	// ConfigDropped is the VM's package manager configuration not carried into the build:
	// hooks, programs, paths, anything outside the allowlist ("file: key").
	ConfigDropped []string `json:"config_dropped,omitempty"`
	// Grained are the package-grained layers' figures (--package-layers grained).
	Grained *Grained `json:"grained,omitempty"`
}

// ImageReport describes the written image.
type ImageReport struct {
	Tag string `json:"tag"`
	// Digest is the manifest's digest (what a registry and `docker images --digests` show);
	// ID is the config's digest, the image ID `docker images` shows.
	Digest string       `json:"digest"`
	ID     string       `json:"id"`
	Bytes  int64        `json:"bytes"` // compressed: config + every layer
	Layers []LayerSizes `json:"layers"`
	Output string       `json:"output,omitempty"`
	Format string       `json:"format,omitempty"`
	Loaded bool         `json:"loaded,omitempty"`
	Pushed string       `json:"pushed,omitempty"`
	// Push says which layers the registry's repository lacked (uploaded) and which it held.
	Push         *image.PushResult `json:"push,omitempty"`
	ContextFiles []string          `json:"context_files,omitempty"` // Dockerfile, services.yaml, compose.yaml

	// LoadSkippedLayers: layers the engine held already, left out of what --load sent it.
	LoadSkippedLayers int `json:"load_skipped_layers,omitempty"`
}

// LayerSizes are one layer's figures.
type LayerSizes struct {
	Role       string `json:"role"` // base, packages, vm-diff, runtime
	Digest     string `json:"digest"`
	DiffID     string `json:"diff_id"`
	Compressed int64  `json:"compressed_bytes"`
	// Source says where the layer came from: base, built, local cache, registry cache (REPO).
	Source string `json:"source,omitempty"`
}

// PhaseTime is how long a phase took.
type PhaseTime struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

func newReport(o Options) *Report {
	return &Report{Source: o.Source, Strategy: string(o.Strategy), Transfer: string(o.Transfer), Services: []string{}}
}

func (r *Report) setSource(info *wire.Info) {
	r.OS = info.OS.ID + " " + info.OS.VersionID
	r.Arch = info.Arch
	r.AgentVersion = info.AgentVersion
}

// EnvLeftOutCount is how many service environment variables were left out of the image.
func (r *Report) EnvLeftOutCount() int {
	n := 0
	for _, e := range r.ServiceEnvLeftOut {
		n += len(e.Names)
	}
	return n
}

// fail records why and after how long the conversion stopped.
func (r *Report) fail(err error, took time.Duration) {
	r.Error = err.Error()
	r.Seconds = took.Seconds()
}

// ServiceSource is one service of the report.
type ServiceSource struct {
	Name   string `json:"name"`
	Source string `json:"source,omitempty"` // unit or process
	Unit   string `json:"unit,omitempty"`
	Reason string `json:"reason,omitempty"` // why it was skipped
}
