// Package agent serves the agent protocol: it decodes requests (pkg/wire), answers them from a
// vmread.Reader, compresses tar streams and sets trailers.
package agent
