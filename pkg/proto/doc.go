// Package proto is the vm2image wire protocol: an authenticated, framed, streaming request/response
// protocol between the converter (Client) and the in-guest agent (Server).
package proto
