// Package proto is the vm2image wire protocol: a framed, streaming request/response protocol
// between the converter (Client) and the in-guest agent (Server), over TLS 1.3 with token proofs
// bound to the TLS session (see README.md).
package proto
