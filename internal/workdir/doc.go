// Package workdir makes private (0700) work directories that are locked while in use, and
// removes the ones that runs killed before their cleanup (SIGKILL, a crash) left behind.
package workdir
