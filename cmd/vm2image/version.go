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
			fmt.Fprintf(cmd.OutOrStdout(), "vm2image %s (protocol %d, %s %s/%s)\n",
				vmread.Version, proto.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
