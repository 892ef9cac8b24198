package convert

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vm2image/vm2image/pkg/builder"
	"github.com/vm2image/vm2image/pkg/diff"
	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/wire"
)

// Format is the output format of -o.
type Format string

// Output formats.
const (
	FormatDockerArchive Format = "docker-archive"
	FormatOCI           Format = "oci"
)

// Transfer is how the VM's files cross the wire.
type Transfer string

// Transfer modes.
const (
	TransferDiff Transfer = "diff" // manifest first, then only the content the converter does not hold
	TransferFull Transfer = "full" // the whole filesystem once, compressed (the 2014 way; a baseline)
)

// Builder is where the packages layer is installed.
type Builder string

// Builders.
const (
	BuilderChroot Builder = builder.Chroot
	BuilderDocker Builder = builder.Docker
)

// ErrInvalidOption is wrapped by every error about an option's value, so a command line can tell
// a usage mistake from a failed conversion.
var ErrInvalidOption = errors.New("invalid option")

// DefaultStrategy is the diff strategy of convert and of diff when none is given: content
// digests decide, so an mtime-only difference is no change and a same-size, same-mtime edit is
// one.
const DefaultStrategy = diff.Checksum

// oneOf checks that v is one of the allowed values of the option named flag.
func oneOf[T ~string](flag string, v T, allowed ...T) (T, error) {
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return v, optionError(fmt.Sprintf("unknown %s %q: want %s", flag, string(v), strings.Join(names, ", ")))
}

// optionError is an error about an option's value: errors.Is(err, ErrInvalidOption).
type optionError string

func (e optionError) Error() string        { return string(e) }
func (e optionError) Is(target error) bool { return target == ErrInvalidOption }

// PackageLayers says how installed packages become layers.
type PackageLayers string

// The ways installed packages become layers.
const (
	PackageLayersSingle  PackageLayers = "single"  // one packages layer
	PackageLayersGrained PackageLayers = "grained" // a layer per package payload, a configuration layer
)

// ParsePackageLayers checks a --package-layers value.
func ParsePackageLayers(s string) (PackageLayers, error) {
	return oneOf("--package-layers", PackageLayers(s), PackageLayersSingle, PackageLayersGrained)
}

// ParseFormat checks an output format name ("" is docker-archive).
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return FormatDockerArchive, nil
	}
	return oneOf("--format", Format(s), FormatDockerArchive, FormatOCI)
}

// ParseTransfer checks a transfer mode name ("" is diff).
func ParseTransfer(s string) (Transfer, error) {
	if s == "" {
		return TransferDiff, nil
	}
	return oneOf("--transfer", Transfer(s), TransferDiff, TransferFull)
}

// ParseBuilder checks a builder name ("" is chroot).
func ParseBuilder(s string) (Builder, error) {
	if s == "" {
		return BuilderChroot, nil
	}
	return oneOf("--builder", Builder(s), BuilderChroot, BuilderDocker)
}

// ParseStrategy checks a diff strategy name ("" is DefaultStrategy).
func ParseStrategy(s string) (diff.Strategy, error) {
	if s == "" {
		return DefaultStrategy, nil
	}
	return oneOf("--strategy", diff.Strategy(s), diff.Rsync, diff.Checksum, diff.Rdiff)
}

// ParseCompression checks a layer compression name ("" is gzip).
func ParseCompression(s string) (image.Compression, error) {
	if s == "" {
		return image.Gzip, nil
	}
	return oneOf("--compression", image.Compression(s), image.Gzip, image.Zstd)
}

// ParseWireCompression checks the name of the compression of streams from the agent ("" is zstd).
func ParseWireCompression(s string) (string, error) {
	if s == "" {
		return wire.CompressZstd, nil
	}
	return oneOf("--wire-compression", s, wire.CompressZstd, wire.CompressGzip, wire.CompressNone)
}

// validate checks every enum of o (after defaults), before anything is read or written.
func (o *Options) validate() error {
	var err error
	if o.Format, err = ParseFormat(string(o.Format)); err != nil {
		return err
	}
	if o.Transfer, err = ParseTransfer(string(o.Transfer)); err != nil {
		return err
	}
	if o.Builder, err = ParseBuilder(string(o.Builder)); err != nil {
		return err
	}
	if o.Strategy, err = ParseStrategy(string(o.Strategy)); err != nil {
		return err
	}
	if o.Compression, err = ParseCompression(string(o.Compression)); err != nil {
		return err
	}
	if o.SourceOptions.Compression, err = ParseWireCompression(o.SourceOptions.Compression); err != nil {
		return err
	}
	if err := o.CheckVolumes(); err != nil {
		return err
	}
	if o.Format == FormatOCI && o.Output == "" {
		return optionError("--format oci needs -o DIR")
	}
	return nil
}
