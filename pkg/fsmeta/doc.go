// Package fsmeta is the file-entry model shared by the agent, the diff engine and the image writer.
package fsmeta
