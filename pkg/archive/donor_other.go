//go:build !linux

package archive

import "archive/tar"

func (a *applier) take(name, rel string, hdr *tar.Header) (bool, error) { return false, nil }
