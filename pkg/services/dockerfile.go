package services

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Paths of the runtime files in an image, and their names in a Dockerfile's build context.
const (
	InitPath          = "/.vm2image/init"
	ServicesPath      = "/.vm2image/services.yaml"
	ContextInitName   = "vm2image-init"
	ContextConfigName = "services.yaml"
)

// ImageConfig is the part of an image's configuration that Dockerfile writes beside the
// services: the ports come from the Config.
type ImageConfig struct {
	Env        []string          // KEY=VALUE
	WorkingDir string            // "" leaves the base's
	User       string            // "" leaves root: the init needs root to start services as their users
	Labels     map[string]string // written sorted by key
}

// Dockerfile returns a Dockerfile equivalent to the image vm2image writes: FROM baseRef (scratch
// when empty), one ADD per layer tar (by file name: the build context holds the layers,
// vm2image-init and services.yaml), ENV, WORKDIR, EXPOSE per published port, LABELs, the init
// and services.yaml copied to /.vm2image, and the init as ENTRYPOINT.
//
// ADD unpacks tar, tar.gz, tar.bz2 and tar.xz layers but not zstd ones, and it does not apply
// OCI whiteouts: files the VM deleted from the base come back in a rebuild. The image vm2image
// writes itself has neither limit.
func Dockerfile(baseRef string, layers []string, cfg Config, image ImageConfig) string {
	var b strings.Builder
	b.WriteString("# Written by vm2image: an equivalent of the image it built.\n")
	fmt.Fprintf(&b, "# Build context: the layer tars below, %s and %s.\n", ContextInitName, ContextConfigName)
	b.WriteString("# ADD does not apply whiteouts (.wh.* entries): paths deleted in the VM stay in a rebuild.\n")
	fmt.Fprintf(&b, "FROM %s\n", cmp.Or(baseRef, "scratch"))
	for _, l := range layers {
		fmt.Fprintf(&b, "ADD %s\n", jsonArray(path.Base(l), "/"))
	}
	for _, e := range image.Env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(&b, "ENV %s=%s\n", k, quoteWord(v))
	}
	if image.WorkingDir != "" {
		fmt.Fprintf(&b, "WORKDIR %s\n", image.WorkingDir)
	}
	if ports := cfg.PublishedPorts(); len(ports) > 0 {
		words := make([]string, len(ports))
		for i, p := range ports {
			words[i] = fmt.Sprintf("%d/%s", p.Port, p.Proto)
		}
		fmt.Fprintf(&b, "EXPOSE %s\n", strings.Join(words, " "))
	}
	if local := loopbackPorts(cfg); local != "" {
		fmt.Fprintf(&b, "# Not exposed, the VM bound them to loopback only: %s\n", local)
	}
	for _, k := range slices.Sorted(maps.Keys(image.Labels)) {
		fmt.Fprintf(&b, "LABEL %s=%s\n", quoteWord(k), quoteWord(image.Labels[k]))
	}
	fmt.Fprintf(&b, "COPY %s\n", jsonArray(ContextInitName, InitPath))
	fmt.Fprintf(&b, "COPY %s\n", jsonArray(ContextConfigName, ServicesPath))
	if image.User != "" {
		fmt.Fprintf(&b, "USER %s\n", image.User)
	}
	fmt.Fprintf(&b, "STOPSIGNAL SIGTERM\nENTRYPOINT %s\n", jsonArray(InitPath))
	return b.String()
}

// loopbackPorts lists "name tcp/8080" for ports bound to loopback only.
func loopbackPorts(cfg Config) string {
	var out []string
	for _, s := range cfg.Services {
		for _, p := range s.Ports {
			if isLoopback(p.Addr) {
				out = append(out, fmt.Sprintf("%s %s/%d", s.Name, p.Proto, p.Port))
			}
		}
	}
	return strings.Join(out, ", ")
}

// jsonArray writes the exec form of an instruction's arguments: a JSON array of strings.
func jsonArray(words ...string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, w := range words {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range w {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r < 0x20:
				fmt.Fprintf(&b, "\\u%04x", r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String()
}

// quoteWord double-quotes s for ENV and LABEL: backslash, quote and '$' (variable substitution)
// escaped, newlines turned into spaces.
func quoteWord(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\r\n", " ", "\n", " ", "\r", " ")
	return `"` + r.Replace(s) + `"`
}

// VolumeMount is a named volume mounted at a path (created beforehand: external).
type VolumeMount struct{ Name, Path string }

// Compose returns a compose.yaml that runs image as one container: every published port mapped
// to the same host port, the init's stop timeout (plus a little) as stop_grace_period, and
// restart "unless-stopped", as a VM brings its services back after a reboot. The container is
// named after the image's repository.
func Compose(image string, cfg Config, vols ...VolumeMount) ([]byte, error) {
	type service struct {
		Image           string   `yaml:"image"`
		Ports           []quoted `yaml:"ports,omitempty"`
		Volumes         []string `yaml:"volumes,omitempty"`
		StopGracePeriod string   `yaml:"stop_grace_period"`
		Restart         string   `yaml:"restart"`
	}
	svc := service{Image: image, Restart: "unless-stopped", StopGracePeriod: (cfg.Stop() + 5*time.Second).Round(time.Second).String()}
	for _, p := range cfg.PublishedPorts() {
		svc.Ports = append(svc.Ports, quoted(fmt.Sprintf("%d:%d/%s", p.Port, p.Port, p.Proto)))
	}
	top := map[string]any{"services": map[string]service{composeName(image): svc}}
	if len(vols) > 0 {
		named := map[string]map[string]any{}
		for _, v := range vols {
			svc.Volumes = append(svc.Volumes, v.Name+":"+v.Path)
			named[v.Name] = map[string]any{"external": true, "name": v.Name}
		}
		top = map[string]any{"services": map[string]service{composeName(image): svc}, "volumes": named}
	}
	var buf bytes.Buffer
	buf.WriteString("# compose.yaml written by vm2image: `docker compose up -d` runs the converted VM.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(top); err != nil {
		return nil, fmt.Errorf("encoding compose.yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding compose.yaml: %w", err)
	}
	return buf.Bytes(), nil
}

// quoted is a string always written double-quoted: compose's documentation asks for quoted port
// mappings, which YAML 1.1 readers could take for base-60 numbers.
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: string(q)}, nil
}

// composeName is the repository's last element without tag or digest, made a valid name.
func composeName(image string) string {
	name, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	return sanitize(path.Base(name))
}
