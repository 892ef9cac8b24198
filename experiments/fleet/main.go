// Command fleet is the helper of the fleet experiment (experiments/fleet.sh): it reads the
// suite (experiments/fleet.yaml), builds the VMs' cached roots, lists their checks, and turns
// the driver's measurements into the results (results.md, results.json, fleet.svg).
//
//	go run ./experiments/fleet roots FLEET.yaml           build the roots; print base/vm lines
//	go run ./experiments/fleet checks FLEET.yaml NAME     print the VM's checks, one a line
//	go run ./experiments/fleet report FLEET.yaml WORK OUT write the results from the driver's WORK
//	go run ./experiments/fleet pod K8S.yaml VOLUME=DIR... the docker run arguments of the Job's pod
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) >= 2 && args[0] == "pod" { // pod K8S.yaml VOLUME=DIR...
		dirs := map[string]string{}
		for _, a := range args[2:] {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return fmt.Errorf("pod: %q: want VOLUME=DIR", a)
			}
			dirs[k] = v
		}
		return podArgs(args[1], dirs)
	}
	if len(args) < 2 {
		return fmt.Errorf("usage: fleet roots|checks|report FLEET.yaml ...")
	}
	s, err := loadSuite(args[1])
	if err != nil {
		return err
	}
	switch {
	case args[0] == "roots" && len(args) == 2:
		return buildRoots(s)
	case args[0] == "checks" && len(args) == 3:
		for _, vm := range s.VMs {
			if vm.Name == args[2] {
				fmt.Println(strings.Join(vm.Checks, "\n"))
				return nil
			}
		}
		return fmt.Errorf("no VM %q in %s", args[2], args[1])
	case args[0] == "report" && len(args) == 4:
		return report(s, args[2], args[3])
	}
	return fmt.Errorf("usage: fleet roots FLEET.yaml | checks FLEET.yaml NAME | report FLEET.yaml WORK OUT")
}
