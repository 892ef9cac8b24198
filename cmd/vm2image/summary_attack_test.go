package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/vm2image/vm2image/pkg/convert"
)

// TestAttackSummaryControlChars: the summary and the warnings print strings that come from the
// VM (paths of files with keys, a scriptlet's output in the packages layer's problems) or from
// a registry cache entry's record (problems, installer, missing packages): none of their
// control characters may reach the operator's terminal.
func TestAttackSummaryControlChars(t *testing.T) {
	evil := "x\x1b]0;pwned\x07\x1b[2J\r\x9b31m"
	rep := &convert.Report{Source: "dir:/vm",
		Packages:    &convert.Packages{Errors: []string{"step \"install\": a package scriptlet failed: " + evil}, Installer: evil, Missing: []string{evil}},
		SecretFiles: []convert.SecretFile{{Path: "/root/" + evil, Kind: "private key"}}}
	var out bytes.Buffer
	printSummary(&out, rep)
	printWarnings(&out, rep)
	s := out.String()
	if !utf8.ValidString(s) || !strings.Contains(s, "pwned") || strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && !unicode.IsPrint(r) }) {
		t.Errorf("control characters reach the terminal:\n%q", s)
	}
}

// TestAttackFleetLogControlChars: the fleet's lines (a VM's warnings, a failed VM's error) go to
// the operator's terminal without the control characters a VM or a registry put in them.
func TestAttackFleetLogControlChars(t *testing.T) {
	var out bytes.Buffer
	d, log := (&fleetOptions{}).fleetDisplay(&out)
	_, _ = log.Write([]byte("fleet: vm1: FAILED after 1.0s: reading x\x1b]0;pwned\x07\x1b[2J\r [1/1]\n"))
	d.Close()
	if s := out.String(); strings.ContainsAny(s, "\x1b\x07\r") || !strings.Contains(s, "pwned") {
		t.Errorf("control characters reach the terminal:\n%q", s)
	}
}
