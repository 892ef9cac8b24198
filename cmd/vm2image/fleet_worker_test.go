package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/vm2image/vm2image/internal/podrun"
	"github.com/vm2image/vm2image/internal/testenv"
)

// TestFleetWorkerInContainer: the converter image (make image) runs a fleet worker with
// docker run exactly as the Indexed Job's pod would (fleet k8s writes the Job; the test takes
// its container's arguments, environment and volumes, binds host directories where the pod
// has its ConfigMap, Secrets and emptyDirs, and sets JOB_COMPLETION_INDEX): the worker converts
// its VM from the VM's agent, with the base from the registry, and pushes the image, which
// verify finds equal to the VM.
func TestFleetWorkerInContainer(t *testing.T) {
	testenv.Short(t)
	testenv.RequireDocker(t)
	testenv.RequireCommands(t, "skopeo", "debootstrap")
	tag := fmt.Sprintf("vm2image-test/converter:%d", os.Getpid())
	img := exec.Command("../../scripts/image.sh")
	img.Env = append(os.Environ(), "IMAGE_TAG="+tag)
	if out, err := img.CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })

	reg := testenv.Registry(t)
	base := reg + "/base:bookworm"
	run(t, "skopeo", "copy", "--quiet", "--dest-tls-verify=false", "docker-daemon:"+testenv.EngineBase(t), "docker://"+base)
	vm := testenv.StartWebVM(t)
	dir := t.TempDir()
	inv := filepath.Join(dir, "fleet.yaml")
	writeFile(t, inv, fmt.Sprintf("vms:\n  - name: other\n    source: 192.0.2.1:49153\n  - name: web1\n    source: %s\n    fingerprint: %s\n", vm.Addr, vm.Fingerprint))
	out, err := exec.Command(vm2imageBinary(t), "fleet", "k8s", inv, "--image", tag, "--push", reg+"/fleet",
		"--token-secret", "fleet-tokens", "--worker-arg=--base=registry://"+base).Output()
	if err != nil {
		t.Fatalf("fleet k8s: %v", err)
	}
	docs := bytes.Split(out, []byte("\n---\n"))
	var cm corev1.ConfigMap
	var job batchv1.Job
	must(t, sigsyaml.UnmarshalStrict(docs[0], &cm))
	must(t, sigsyaml.UnmarshalStrict(docs[1], &job))

	// Host directories where the pod has its volumes.
	hostDir := map[string]string{}
	for _, v := range job.Spec.Template.Spec.Volumes {
		d := filepath.Join(dir, "vol-"+v.Name)
		must(t, os.MkdirAll(d, 0o700))
		switch {
		case v.ConfigMap != nil:
			for k, val := range cm.Data {
				writeFile(t, filepath.Join(d, k), val)
			}
		case v.Secret != nil && v.Secret.SecretName == "fleet-tokens":
			writeFile(t, filepath.Join(d, "web1"), string(vm.Token))
		}
		hostDir[v.Name] = d
	}
	args := podrun.Args(job.Spec.Template.Spec.Containers[0], hostDir, "JOB_COMPLETION_INDEX=1")
	cmd := exec.Command("docker", args...)
	b, err := cmd.CombinedOutput()
	t.Logf("docker %s\n%s", strings.Join(args, " "), b)
	if err != nil {
		t.Fatalf("the worker failed: %v", err)
	}
	if !strings.Contains(string(b), "1 converted, 0 failed") {
		t.Errorf("the worker did not convert its one VM")
	}
	ref := reg + "/fleet:web1"
	run(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+ref)
	tok := filepath.Join(dir, "token")
	writeFile(t, tok, string(vm.Token))
	v, err := exec.Command(vm2imageBinary(t), "verify", "registry://"+ref, vm.Addr, "--token-file", tok, "--fingerprint", vm.Fingerprint).CombinedOutput()
	if err != nil || !strings.Contains(string(v), "EQUAL") {
		t.Errorf("verify of the worker's image: %v\n%s", err, v)
	}
}
