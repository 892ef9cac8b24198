// Package vmread reads a VM's root the way the agent protocol asks: system information,
// installed packages, dependency queries, processes and ports, file manifests, hashes, tar
// streams and deltas. The agent serves it over the wire; dir: sources run it in-process.
package vmread
