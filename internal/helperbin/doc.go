// Package helperbin finds the binaries vm2image ships beside itself (vm2image-init,
// vm2image-agent).
package helperbin
