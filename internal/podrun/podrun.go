// Package podrun turns a Kubernetes pod's container into the arguments of a `docker run` that
// runs it on this host the way a kubelet would: its capabilities and security profiles, its
// environment, its volumes bound to host directories, its image and arguments. The fleet's
// tests and experiment run the Indexed Job's workers this way.
package podrun

import (
	corev1 "k8s.io/api/core/v1"
)

// Args returns `docker run` arguments (without "docker") for c, with the host network and the
// pod's volumes bound to hostDirs (by volume name); extraEnv ("NAME=VALUE") come before the
// container's own environment.
func Args(c corev1.Container, hostDirs map[string]string, extraEnv ...string) []string {
	args := []string{"run", "--rm", "--network", "host"}
	for _, e := range extraEnv {
		args = append(args, "-e", e)
	}
	args = append(args, securityArgs(c.SecurityContext)...)
	for _, e := range c.Env {
		args = append(args, "-e", e.Name+"="+e.Value)
	}
	for _, m := range c.VolumeMounts {
		spec := hostDirs[m.Name] + ":" + m.MountPath
		if m.ReadOnly {
			spec += ":ro"
		}
		args = append(args, "-v", spec)
	}
	return append(append(args, c.Image), c.Args...)
}

func securityArgs(sc *corev1.SecurityContext) []string {
	if sc == nil {
		return nil
	}
	var args []string
	if sc.Privileged != nil && *sc.Privileged {
		args = append(args, "--privileged")
	}
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Add {
			args = append(args, "--cap-add", string(c))
		}
	}
	if sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeUnconfined {
		args = append(args, "--security-opt", "seccomp=unconfined")
	}
	if sc.AppArmorProfile != nil && sc.AppArmorProfile.Type == corev1.AppArmorProfileTypeUnconfined {
		args = append(args, "--security-opt", "apparmor=unconfined")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	return args
}
