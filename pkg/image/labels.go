package image

// Labels vm2image sets on the images it writes. LabelExcludes holds the conversion's excludes
// as a JSON list: verify reads it to compare under the same excludes.
const (
	LabelSource       = "org.vm2image.source"
	LabelHost         = "org.vm2image.source.hostname"
	LabelOS           = "org.vm2image.source.os"
	LabelAgentVersion = "org.vm2image.agent.version"
	LabelCreated      = "org.vm2image.created"
	LabelStrategy     = "org.vm2image.strategy"
	LabelExcludes     = "org.vm2image.excludes"
	LabelVersion      = "org.vm2image.version"
)

// DefaultExcludes are left out of every conversion (anchored): scratch space, package caches
// and lists that a container rebuilds, and files a container runtime provides. An image
// without LabelExcludes was converted under these alone.
var DefaultExcludes = []string{
	"/tmp/*", "/var/tmp/*", "/var/cache/apt/archives/*.deb", "/var/cache/apt/*.bin",
	"/var/lib/apt/lists/*", "/lost+found", "/swapfile", "/swap.img",
}
