// Package archtest holds no code: its test checks the import rules between the repository's
// packages (which side of the protocol may depend on which).
package archtest
