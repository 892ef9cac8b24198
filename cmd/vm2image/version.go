package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/vm2image/vm2image/pkg/proto"
	"github.com/vm2image/vm2image/pkg/vmread"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  vm2image version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}

// versionLine is what the version command and --version print (vm2image-agent's alike).
func versionLine() string {
	return fmt.Sprintf("vm2image %s (protocol %d, %s %s/%s)", vmread.Version, proto.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
