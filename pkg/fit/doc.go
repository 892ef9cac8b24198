// Package fit assesses whether a VM will work as a container: what comes along and how, what
// needs a decision (mounts, kernel modules, timers, bound addresses, data directories, ...), and
// a verdict. It reads the VM's files only through the source (bounded, as data).
package fit
