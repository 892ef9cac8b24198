package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vm2image/vm2image/pkg/fleet"
)

type fleetK8sOptions struct {
	fleet.K8sOptions
	output string
}

func newFleetK8sCmd() *cobra.Command {
	var o fleetK8sOptions
	cmd := &cobra.Command{
		Use:   "k8s INVENTORY",
		Short: "Write a Kubernetes Indexed Job that converts the fleet",
		Long: `K8s writes a ConfigMap holding the inventory and an Indexed Job with one completion per VM:
each pod runs the converter image (make image) as a worker, "vm2image fleet convert" of the VM
its completion index names ($JOB_COMPLETION_INDEX), and pushes the image to --push REPOSITORY as
REPOSITORY:NAME. Apply it with "kubectl apply -f".

Sources must be agents (HOST[:PORT]): a dir:, tar: or disk: path names this machine's files.
Agent tokens come from --token-secret, a Secret with one key per VM name; registry credentials
from --registry-secret, a Secret of type kubernetes.io/dockerconfigjson (its config.json is the
pod's DOCKER_CONFIG). The pods are not privileged but get CAP_SYS_ADMIN and unconfined seccomp
and AppArmor profiles: the package build sandbox makes mount, pid and network namespaces, mounts
overlays and pivots into the build root (unshare, mount, pivot_root), which the default profiles
refuse; no host devices, no privilege escalation. Each pod has its own cache (an emptyDir); layers are shared through the registry:
a layer the repository holds is not uploaded again.`,
		Example: `  kubectl create secret generic fleet-tokens --from-file=web1=web1.token --from-file=db1=db1.token
  vm2image fleet k8s fleet.yaml --image registry.local/vm2image:1 --push registry.local/fleet \
      --token-secret fleet-tokens --registry-secret regcred --parallelism 4 > fleet-job.yaml
  kubectl apply -f fleet-job.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFleetK8s(cmd.Context(), o, args[0], cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "vm2image-fleet", "the Job's name")
	f.StringVar(&o.Namespace, "namespace", "", "the namespace (default: kubectl's)")
	f.StringVar(&o.Image, "image", "", "the converter image the pods run (built by make image)")
	f.StringVar(&o.Push, "push", "", "push each image to this repository as REPOSITORY:NAME")
	f.IntVar(&o.Parallelism, "parallelism", 2, "pods at once")
	f.IntVar(&o.BackoffLimitPerIndex, "retries", 1, "how often one VM's conversion is retried")
	f.StringVar(&o.TokenSecret, "token-secret", "", "Secret with one key per VM name holding its agent token")
	f.StringVar(&o.RegistrySecret, "registry-secret", "", "Secret (kubernetes.io/dockerconfigjson) with the registry's credentials")
	f.StringArrayVar(&o.Args, "worker-arg", nil, "an extra argument for each worker's fleet convert (repeatable), e.g. --worker-arg=--base=registry://...")
	return cmd
}

func runFleetK8s(_ context.Context, o fleetK8sOptions, invPath string, stdout io.Writer) error {
	if o.Image == "" || o.Push == "" {
		return usage(fmt.Errorf("--image and --push are required"))
	}
	if strings.Contains(o.Push, "@") {
		return usage(fmt.Errorf("--push %s: want a repository; each VM's name becomes its tag", o.Push))
	}
	inv, err := fleet.Load(invPath, nil)
	if err != nil {
		return usage(err)
	}
	for _, vm := range inv.Resolved() {
		if err := checkSourceSpec(vm.Source); err != nil {
			return usage(fmt.Errorf("%s:%d: VM %q: %w", invPath, vm.Line, vm.Name, err))
		}
	}
	b, err := fleet.K8sManifests(inv, o.K8sOptions)
	if err != nil {
		return usage(err)
	}
	_, err = stdout.Write(b)
	return err
}
