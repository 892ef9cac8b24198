// Package progress shows the phases of a long command to its operator: redrawn lines on a
// terminal, a plain line every few seconds in logs, or JSON lines for tools (see docs/progress.md).
package progress
