package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/vm2image/vm2image/internal/podrun"
)

// podArgs reads what "vm2image fleet k8s" wrote (a ConfigMap and the Indexed Job), writes the
// ConfigMap's files into dirs["inventory"], and prints the arguments of the docker run that
// runs the Job's pod here (one a line; the caller adds -e JOB_COMPLETION_INDEX=i): the pod's
// capabilities and security profiles, its environment, its volumes bound to the host
// directories dirs names (by volume name), its image and arguments. The way
// TestFleetWorkerInContainer runs a worker.
func podArgs(manifests string, dirs map[string]string) error {
	b, err := os.ReadFile(manifests)
	if err != nil {
		return fmt.Errorf("reading the manifests: %w", err)
	}
	docs := bytes.Split(b, []byte("\n---\n"))
	if len(docs) != 2 {
		return fmt.Errorf("%s: want a ConfigMap and a Job, got %d documents", manifests, len(docs))
	}
	var cm corev1.ConfigMap
	var job batchv1.Job
	if err := sigsyaml.UnmarshalStrict(docs[0], &cm); err != nil {
		return fmt.Errorf("decoding the ConfigMap: %w", err)
	}
	if err := sigsyaml.UnmarshalStrict(docs[1], &job); err != nil {
		return fmt.Errorf("decoding the Job: %w", err)
	}
	spec := job.Spec.Template.Spec
	for _, v := range spec.Volumes {
		if dirs[v.Name] == "" {
			return fmt.Errorf("the pod's volume %q has no host directory", v.Name)
		}
		if v.ConfigMap != nil {
			for k, val := range cm.Data {
				if err := os.WriteFile(filepath.Join(dirs[v.Name], k), []byte(val), 0o644); err != nil {
					return err
				}
			}
		}
	}
	args := podrun.Args(spec.Containers[0], dirs)
	for _, a := range args {
		fmt.Println(a)
	}
	return nil
}
