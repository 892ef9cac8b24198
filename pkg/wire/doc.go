// Package wire holds the vocabulary of the agent protocol: operation names, request arguments,
// answers and trailers, as both the agent and the converter encode and decode them.
package wire
