package wire

import (
	"github.com/vm2image/vm2image/pkg/delta"
	"github.com/vm2image/vm2image/pkg/fswalk"
	"github.com/vm2image/vm2image/pkg/pkgmgr"
)

// Operations of the protocol.
const (
	OpInfo       = "info"
	OpPackages   = "packages"
	OpDeps       = "deps"
	OpProcesses  = "processes"
	OpTree       = "tree"
	OpHash       = "hash"
	OpFiles      = "files"
	OpFilesystem = "filesystem"
	// OpDelta is one file's delta against a signature the converter sends.
	OpDelta = "delta"
)

// Compression names accepted on the wire.
const (
	CompressZstd = "zstd"
	CompressGzip = "gzip"
	CompressNone = "none"
)

// MaxHashPaths bounds one hash request.
const MaxHashPaths = 100000

// MaxDeltaSignature bounds the signature of a delta request. It travels base64-encoded inside
// the request, which must fit in one frame (proto.MaxPayload, 1 MiB): 736 KiB encode to 981 KiB,
// leaving room for a 4 KiB path however JSON escapes it. That is 20,934 blocks of 32-byte
// BLAKE2 sums: files up to 42 MB at delta.DefaultBlockLen, about 430 MB at rdiff's
// delta.BlockLen(size), 87 GB at delta.MaxBlockLen; delta.BlockLenWithin(size,
// MaxDeltaSignature) picks the block length for a file of a given size.
const MaxDeltaSignature = 736 << 10

// Info describes the served system: the answer of the info request.
type Info struct {
	OS           OSRelease `json:"os"`
	Arch         string    `json:"arch"` // GOARCH names: amd64, arm64, 386, arm, ...
	Kernel       string    `json:"kernel,omitempty"`
	Hostname     string    `json:"hostname,omitempty"`
	CPUs         int       `json:"cpus"`
	MemoryBytes  int64     `json:"memory_bytes,omitempty"`
	Mounts       []Mount   `json:"mounts,omitempty"`
	Root         string    `json:"root"`
	AgentVersion string    `json:"agent_version"`
	// Problems are the VM files that could not be read (a field is then left empty).
	Problems []Problem `json:"problems,omitempty"`
}

// OSRelease holds the os-release fields the converter uses, plus all of them raw.
type OSRelease struct {
	ID         string            `json:"id"`
	IDLike     []string          `json:"id_like,omitempty"`
	VersionID  string            `json:"version_id,omitempty"`
	Codename   string            `json:"version_codename,omitempty"`
	PrettyName string            `json:"pretty_name,omitempty"`
	Fields     map[string]string `json:"fields,omitempty"`
}

// Mount is a filesystem mounted under the served root.
type Mount struct {
	Path   string `json:"path"`
	FSType string `json:"fstype"`
	Source string `json:"source,omitempty"`
}

// Problem is a per-path error met while walking or reading: reported, never fatal.
type Problem struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// TreeArgs are the arguments of the tree, filesystem and files requests.
type TreeArgs struct {
	Excludes    []string `json:"excludes,omitempty"`
	NoXattrs    bool     `json:"no_xattrs,omitempty"`
	Digest      bool     `json:"digest,omitempty"`
	Compression string   `json:"compression,omitempty"` // zstd (default), gzip, none
	Level       int      `json:"level,omitempty"`
	Paths       Paths    `json:"paths,omitempty"` // files only
	Recursive   bool     `json:"recursive,omitempty"`
}

// TreeResult summarises a walk or a tar stream: the trailer of the tree, filesystem and files
// requests.
type TreeResult struct {
	Stats         fswalk.Stats `json:"stats"`
	Problems      []Problem    `json:"problems,omitempty"`
	ProblemsTotal int          `json:"problems_total,omitempty"`
}

// ProcessArgs are the arguments of the processes request.
type ProcessArgs struct {
	Env           bool `json:"env,omitempty"`
	ListeningOnly bool `json:"listening_only,omitempty"`
}

// HashArgs are the arguments of the hash request.
type HashArgs struct {
	Paths Paths `json:"paths"`
}

// DepsArgs are the arguments of the deps request.
type DepsArgs struct {
	Names     []string `json:"names"`
	Recursive bool     `json:"recursive,omitempty"` // follow resolved edges to the closure
}

// Edge is one dependency of a package resolved against the installed database.
type Edge struct {
	Kind pkgmgr.DepKind    `json:"kind"`
	Alts []pkgmgr.Relation `json:"alts"`
	// To is the installed package that satisfies the dependency ("" when none does).
	To string `json:"to,omitempty"`
}

// DepsAnswer is the answer of the deps request for one package.
type DepsAnswer struct {
	Name      string `json:"name"`
	Installed bool   `json:"installed"`
	Version   string `json:"version,omitempty"`
	Arch      string `json:"arch,omitempty"`
	Edges     []Edge `json:"edges,omitempty"`
}

// DeltaArgs are the arguments of the delta request.
type DeltaArgs struct {
	// Path is the file, a slash path from the root, resolved as the files request resolves it.
	Path Path `json:"path"`
	// Signature is the converter's signature of its version of the file (delta.Signature).
	Signature []byte `json:"signature"`
	// Compression of the delta on the wire: zstd (default), gzip, none.
	Compression string `json:"compression,omitempty"`
}

// DeltaResult summarises a delta, the trailer of the delta request: the size of the file read
// and the delta's statistics.
type DeltaResult struct {
	Size  int64       `json:"size"`
	Stats delta.Stats `json:"stats"`
}
