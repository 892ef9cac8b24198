// Package procs lists a Linux host's processes from procfs with their owners, command lines and the TCP and UDP sockets they listen on.
package procs
