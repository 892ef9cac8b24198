package fleet

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// K8sOptions describe the Indexed Job that converts a fleet on Kubernetes: one completion per
// VM, each pod a worker of the converter image converting the VM of its completion index.
type K8sOptions struct {
	Name           string // the Job's name (and its ConfigMap's prefix)
	Namespace      string
	Image          string // the converter image (make image)
	Push           string // the repository the images go to (REPOSITORY:NAME)
	Parallelism    int    // pods at once
	TokenSecret    string // Secret with one key per VM name: its agent token
	RegistrySecret string // Secret of type kubernetes.io/dockerconfigjson for the registry ("" none)
	Args           []string
	// BackoffLimitPerIndex is how often one VM's conversion is retried (default 1).
	BackoffLimitPerIndex int
}

// Paths inside the pod.
const (
	podInventoryDir = "/etc/vm2image"
	podTokensDir    = "/var/run/vm2image/tokens"
	podDockerConfig = "/var/run/vm2image/docker"
	podCache        = "/var/cache/vm2image"
	podState        = "/var/lib/vm2image/state"
	// The work directory is the state's emptyDir too: the build's overlay needs an upper
	// directory on a real filesystem, not on the container's own overlay root.
)

var k8sNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$`)

// K8sManifests writes the ConfigMap holding the inventory (token files pointed at the token
// Secret's keys) and the Indexed Job as one YAML stream. Sources must be agents: a dir:, tar: or
// disk: path names this machine's files, which a pod cannot read.
func K8sManifests(inv *Inventory, o K8sOptions) ([]byte, error) {
	if !k8sNameRE.MatchString(o.Name) {
		return nil, fmt.Errorf("job name %q: want lower-case letters, digits and '-', at most 52", o.Name)
	}
	if o.Image == "" || o.Push == "" {
		return nil, fmt.Errorf("the converter image and the repository to push to are required")
	}
	if o.Parallelism < 1 {
		o.Parallelism = 1
	}
	if o.BackoffLimitPerIndex < 0 {
		o.BackoffLimitPerIndex = 0
	}
	podInv := Inventory{Defaults: inv.Defaults}
	podInv.Defaults.TokenFile = ""
	for _, vm := range inv.Resolved() {
		if strings.HasPrefix(vm.Source, "dir:") || strings.HasPrefix(vm.Source, "tar:") || strings.HasPrefix(vm.Source, "disk:") {
			return nil, fmt.Errorf("%w: %s:%d: VM %q: %s names a file of this machine, which a pod cannot read: give the VM's agent", ErrInventory, inv.path, vm.Line, vm.Name, vm.Source)
		}
		vm.Line = 0
		vm.TokenFile = ""
		if o.TokenSecret != "" {
			vm.TokenFile = path.Join(podTokensDir, vm.Name)
		}
		vm.Excludes = trimDefaults(vm.Excludes, inv.Defaults.Excludes)
		vm.Services = trimDefaults(vm.Services, inv.Defaults.Services)
		vm.SkipService = trimDefaults(vm.SkipService, inv.Defaults.SkipService)
		podInv.VMs = append(podInv.VMs, vm)
	}
	invYAML, err := yaml.Marshal(podInv)
	if err != nil {
		return nil, err
	}
	cm := configMap{APIVersion: "v1", Kind: "ConfigMap", Metadata: o.meta(o.Name + "-inventory"),
		Data: map[string]string{"inventory.yaml": string(invYAML)}}
	job := o.job(len(podInv.VMs))
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, doc := range []any{cm, job} {
		if err := enc.Encode(doc); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// trimDefaults drops the defaults' leading share of a resolved list: the pod's inventory keeps
// the defaults, which add them again.
func trimDefaults(list, defaults []string) []string {
	if len(list) >= len(defaults) {
		return list[len(defaults):]
	}
	return list
}

func (o K8sOptions) meta(name string) objectMeta {
	return objectMeta{Name: name, Namespace: o.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "vm2image", "vm2image.io/fleet": o.Name}}
}

func (o K8sOptions) job(n int) job {
	args := append([]string{"fleet", "convert", podInventoryDir + "/inventory.yaml", "--push", o.Push,
		"--state", podState, "--cache-dir", podCache, "--work-dir", path.Dir(podState), "--jobs", "1"}, o.Args...)
	mounts := []volumeMount{
		{Name: "inventory", MountPath: podInventoryDir, ReadOnly: true},
		{Name: "cache", MountPath: podCache},
		{Name: "state", MountPath: path.Dir(podState)},
	}
	volumes := []volume{
		{Name: "inventory", ConfigMap: &configMapSource{Name: o.Name + "-inventory"}},
		{Name: "cache", EmptyDir: &struct{}{}},
		{Name: "state", EmptyDir: &struct{}{}},
	}
	env := []envVar{{Name: "VM2IMAGE_INIT", Value: "/usr/local/bin/vm2image-init"}}
	if o.TokenSecret != "" {
		mounts = append(mounts, volumeMount{Name: "tokens", MountPath: podTokensDir, ReadOnly: true})
		volumes = append(volumes, volume{Name: "tokens", Secret: &secretSource{SecretName: o.TokenSecret, DefaultMode: ptr(0o400)}})
	}
	if o.RegistrySecret != "" {
		mounts = append(mounts, volumeMount{Name: "registry", MountPath: podDockerConfig, ReadOnly: true})
		volumes = append(volumes, volume{Name: "registry", Secret: &secretSource{SecretName: o.RegistrySecret, DefaultMode: ptr(0o400),
			Items: []keyToPath{{Key: ".dockerconfigjson", Path: "config.json"}}}})
		env = append(env, envVar{Name: "DOCKER_CONFIG", Value: podDockerConfig})
	}
	return job{APIVersion: "batch/v1", Kind: "Job", Metadata: o.meta(o.Name), Spec: jobSpec{
		CompletionMode: "Indexed", Completions: n, Parallelism: min(o.Parallelism, n),
		BackoffLimitPerIndex: ptr(o.BackoffLimitPerIndex), MaxFailedIndexes: ptr(n),
		Template: podTemplate{Metadata: objectMeta{Labels: o.meta(o.Name).Labels}, Spec: podSpec{
			RestartPolicy: "Never",
			Containers: []container{{Name: "convert", Image: o.Image, Args: args, Env: env, VolumeMounts: mounts,
				// The build sandbox makes namespaces, mounts overlays and pivots into the build
				// root (CAP_SYS_ADMIN) and brings up the loopback of its offline network namespace
				// (CAP_NET_ADMIN), with the syscalls the default seccomp and AppArmor
				// profiles refuse (unshare, mount, pivot_root). Not privileged: no host devices.
				SecurityContext: &securityContext{Privileged: ptr(false), AllowPrivilegeEscalation: ptr(false),
					Capabilities:    &capabilities{Add: []string{"SYS_ADMIN", "NET_ADMIN"}},
					SeccompProfile:  &profile{Type: "Unconfined"},
					AppArmorProfile: &profile{Type: "Unconfined"}},
				Resources: resources{Requests: map[string]string{"cpu": "1", "memory": "1Gi"}, Limits: map[string]string{"memory": "4Gi"}}}},
			Volumes: volumes,
		}},
	}}
}

func ptr[T any](v T) *T { return &v }

// The Kubernetes objects, as far as the manifests use them (field names as the API spells them;
// a test decodes them strictly into k8s.io/api's types).
type objectMeta struct {
	Name      string            `yaml:"name,omitempty"`
	Namespace string            `yaml:"namespace,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty"`
}

type configMap struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
}

type job struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       jobSpec    `yaml:"spec"`
}

type jobSpec struct {
	CompletionMode       string      `yaml:"completionMode"`
	Completions          int         `yaml:"completions"`
	Parallelism          int         `yaml:"parallelism"`
	BackoffLimitPerIndex *int        `yaml:"backoffLimitPerIndex,omitempty"`
	MaxFailedIndexes     *int        `yaml:"maxFailedIndexes,omitempty"`
	Template             podTemplate `yaml:"template"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type podSpec struct {
	RestartPolicy string      `yaml:"restartPolicy"`
	Containers    []container `yaml:"containers"`
	Volumes       []volume    `yaml:"volumes"`
}

type container struct {
	Name            string           `yaml:"name"`
	Image           string           `yaml:"image"`
	Args            []string         `yaml:"args"`
	Env             []envVar         `yaml:"env,omitempty"`
	VolumeMounts    []volumeMount    `yaml:"volumeMounts"`
	SecurityContext *securityContext `yaml:"securityContext,omitempty"`
	Resources       resources        `yaml:"resources"`
}

type envVar struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly,omitempty"`
}

type securityContext struct {
	Privileged               *bool         `yaml:"privileged,omitempty"`
	AllowPrivilegeEscalation *bool         `yaml:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *capabilities `yaml:"capabilities,omitempty"`
	SeccompProfile           *profile      `yaml:"seccompProfile,omitempty"`
	AppArmorProfile          *profile      `yaml:"appArmorProfile,omitempty"`
}

type capabilities struct {
	Add []string `yaml:"add,omitempty"`
}

type profile struct {
	Type string `yaml:"type"`
}

type resources struct {
	Requests map[string]string `yaml:"requests,omitempty"`
	Limits   map[string]string `yaml:"limits,omitempty"`
}

type volume struct {
	Name      string           `yaml:"name"`
	ConfigMap *configMapSource `yaml:"configMap,omitempty"`
	Secret    *secretSource    `yaml:"secret,omitempty"`
	EmptyDir  *struct{}        `yaml:"emptyDir,omitempty"`
}

type configMapSource struct {
	Name string `yaml:"name"`
}

type secretSource struct {
	SecretName  string      `yaml:"secretName"`
	DefaultMode *int        `yaml:"defaultMode,omitempty"`
	Items       []keyToPath `yaml:"items,omitempty"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}
