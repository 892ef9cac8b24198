// Package agent is what vm2image-agent serves: system information, installed packages,
// dependency queries, processes and ports, file manifests, hashes and tar streams of a root.
package agent
