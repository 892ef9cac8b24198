// Package suggest finds the flag or command a user probably meant when they mistyped one, for
// the "did you mean" hints vm2image and vm2image-agent print alike.
package suggest
