package fleet

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

const agentInventory = `defaults:
  token_file: fleet.token
  excludes: [/srv/cache/*]
vms:
  - name: web1
    source: 10.0.0.5:49153
    fingerprint: SHA256:abc
  - name: db1
    source: 10.0.0.6:49153
    excludes: [/var/tmp/*]
    no_packages: true
`

// TestK8sManifestsDecodeStrictly: the ConfigMap and the Indexed Job decode strictly (an unknown
// or misspelt field is an error) into k8s.io/api's types, with one completion per VM, the
// tokens and registry credentials from Secrets, and the pod's inventory resolving to the same
// VMs as the original, token files pointed at the Secret's keys.
func TestK8sManifestsDecodeStrictly(t *testing.T) {
	inv, err := Parse("/srv/fleet/inv.yaml", []byte(agentInventory), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := K8sManifests(inv, K8sOptions{Name: "fleet-a", Namespace: "migrate", Image: "registry.local/vm2image:1",
		Push: "registry.local/fleet", Parallelism: 5, TokenSecret: "fleet-tokens", RegistrySecret: "regcred", BackoffLimitPerIndex: 1})
	if err != nil {
		t.Fatal(err)
	}
	docs := bytes.Split(out, []byte("\n---\n"))
	if len(docs) != 2 {
		t.Fatalf("%d documents:\n%s", len(docs), out)
	}
	var cm corev1.ConfigMap
	if err := sigsyaml.UnmarshalStrict(docs[0], &cm); err != nil {
		t.Fatalf("ConfigMap: %v\n%s", err, docs[0])
	}
	var job batchv1.Job
	if err := sigsyaml.UnmarshalStrict(docs[1], &job); err != nil {
		t.Fatalf("Job: %v\n%s", err, docs[1])
	}
	s := job.Spec
	if job.Kind != "Job" || job.APIVersion != "batch/v1" || job.Namespace != "migrate" || *s.CompletionMode != batchv1.IndexedCompletion ||
		*s.Completions != 2 || *s.Parallelism != 2 || *s.BackoffLimitPerIndex != 1 || s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("job spec %+v", s)
	}
	c := s.Template.Spec.Containers[0]
	if c.Image != "registry.local/vm2image:1" || !strings.Contains(strings.Join(c.Args, " "), "fleet convert /etc/vm2image/inventory.yaml --push registry.local/fleet") ||
		c.SecurityContext == nil || *c.SecurityContext.Privileged || c.SecurityContext.Capabilities.Add[0] != "SYS_ADMIN" ||
		c.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeUnconfined {
		t.Errorf("container %+v", c)
	}
	secrets := map[string]bool{}
	for _, v := range s.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = true
		}
	}
	if !secrets["fleet-tokens"] || !secrets["regcred"] {
		t.Errorf("secret volumes %v", secrets)
	}
	pod, err := Parse("inventory.yaml", []byte(cm.Data["inventory.yaml"]), nil)
	if err != nil {
		t.Fatalf("the pod's inventory: %v\n%s", err, cm.Data["inventory.yaml"])
	}
	want, got := inv.Resolved(), pod.Resolved()
	for i := range want {
		w, g := want[i], got[i]
		if g.Name != w.Name || g.Source != w.Source || g.Fingerprint != w.Fingerprint || g.TokenFile != "/var/run/vm2image/tokens/"+w.Name ||
			strings.Join(g.Excludes, " ") != strings.Join(w.Excludes, " ") || (g.NoPackages == nil) != (w.NoPackages == nil) {
			t.Errorf("VM %d in the pod: %+v, want %+v", i, g, w)
		}
	}
	// A field k8s does not know is refused by the same strict decoding: the test can fail.
	var bad batchv1.Job
	if err := sigsyaml.UnmarshalStrict(bytes.Replace(docs[1], []byte("completionMode"), []byte("completionMod"), 1), &bad); err == nil {
		t.Error("strict decoding accepted a misspelt field")
	}
	var any map[string]any
	if err := yaml.Unmarshal(docs[1], &any); err != nil {
		t.Fatal(err)
	}
}

func TestK8sManifestsRefuseLocalSources(t *testing.T) {
	inv, err := Parse("inv.yaml", []byte("vms:\n  - name: a\n    source: 10.0.0.1\n  - name: b\n    source: dir:/srv/b\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = K8sManifests(inv, K8sOptions{Name: "f", Image: "i", Push: "r/p"})
	if !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), "inv.yaml:4") || !strings.Contains(err.Error(), "a pod cannot read") {
		t.Errorf("dir: source in a job: %v", err)
	}
	if _, err := K8sManifests(inv, K8sOptions{Name: "Bad_Name", Image: "i", Push: "r/p"}); err == nil {
		t.Error("accepted a job name Kubernetes refuses")
	}
}
