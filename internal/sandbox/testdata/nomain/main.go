// Command nomain runs a sandbox without calling sandbox.Main: re-executed as the sandbox's
// init, it does what a CLI does without arguments (nothing, exit 0). Run must not take that
// for the command's success.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vm2image/vm2image/internal/sandbox"
)

func main() {
	if len(os.Args) < 2 {
		return
	}
	err := sandbox.Run(context.Background(), sandbox.Spec{Root: os.Args[1], Path: "/bin/false", Argv: []string{"false"}}, os.Stdout)
	fmt.Println(err)
	if errors.Is(err, sandbox.ErrSetup) {
		os.Exit(3)
	}
}
