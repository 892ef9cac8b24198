// Package archtest holds no code: its test enforces the import rules docs/architecture.md
// states (which package may import which), over `go list`'s view of the module.
package archtest
