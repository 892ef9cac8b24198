// Package disk reads a VM's root filesystem out of a disk image (qcow2, VMDK, VHD, VHDX, raw or
// an OVA) as a tar stream, without writing to the image and, by default, without letting the
// host kernel parse the image's filesystems (libguestfs's appliance does).
package disk
