package podrun

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestArgs(t *testing.T) {
	no := false
	c := corev1.Container{Image: "img:1", Args: []string{"fleet", "convert"},
		Env:          []corev1.EnvVar{{Name: "A", Value: "1"}},
		VolumeMounts: []corev1.VolumeMount{{Name: "inv", MountPath: "/inv", ReadOnly: true}, {Name: "work", MountPath: "/work"}},
		SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &no,
			Capabilities:   &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN", "NET_ADMIN"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}}}
	got := Args(c, map[string]string{"inv": "/h/inv", "work": "/h/work"}, "JOB_COMPLETION_INDEX=3")
	want := []string{"run", "--rm", "--network", "host", "-e", "JOB_COMPLETION_INDEX=3",
		"--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined",
		"--security-opt", "no-new-privileges", "-e", "A=1", "-v", "/h/inv:/inv:ro", "-v", "/h/work:/work",
		"img:1", "fleet", "convert"}
	if !slices.Equal(got, want) {
		t.Errorf("Args =\n%q\nwant\n%q", got, want)
	}
}
