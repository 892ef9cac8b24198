// Package sandbox runs a command for a VM (an installer, the maintainer scripts it starts) in
// its own mount, pid, ipc, uts and, when asked, network namespaces, pivoted into a build root
// with a reduced capability set and no_new_privs, by re-executing the current binary.
package sandbox
