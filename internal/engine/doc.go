// Package engine connects to the Docker engine: one client construction and API-version
// negotiation for every package that talks to it.
package engine
