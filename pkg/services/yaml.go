package services

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"
)

// MaxConfigSize bounds what ReadServicesYAML reads.
const MaxConfigSize = 4 << 20

// header opens every services.yaml this package writes.
const header = `# services.yaml: the services vm2image-init starts in this image (written by vm2image).
# Each runs with its own argv (foreground_argv when set), uid/gid, cwd and env; restart: no |
# on-failure | on-success | always. A service that ends for good leaves the others running
# unless it has main: true (or fails under stop_on_failure: true); source says whether it was
# described by its systemd unit or by its running process.
`

// WriteServicesYAML writes cfg as services.yaml, with the version and restart policies set.
func WriteServicesYAML(w io.Writer, cfg Config) error {
	cfg = cfg.normalized()
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return fmt.Errorf("encoding services.yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encoding services.yaml: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing services.yaml: %w", err)
	}
	return nil
}

// ReadServicesYAML reads services.yaml strictly: unknown fields, a second document, or a
// configuration Validate refuses are errors naming the line.
func ReadServicesYAML(r io.Reader) (Config, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return Config{}, fmt.Errorf("reading services.yaml: %w", err)
	}
	if len(b) > MaxConfigSize {
		return Config{}, fmt.Errorf("reading services.yaml: larger than %d bytes", MaxConfigSize)
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("reading services.yaml: empty document")
		}
		return Config{}, fmt.Errorf("reading services.yaml: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("reading services.yaml: line %d: more than one document", extra.Line)
	}
	if err := cfg.Validate(); err != nil {
		var se *ServiceError
		if errors.As(err, &se) {
			se.Line = serviceLine(b, se.Index)
		}
		return Config{}, fmt.Errorf("reading services.yaml: %w", err)
	}
	return cfg.normalized(), nil
}

// normalized returns c with its defaults written out: the version, and restart "no" where
// none is given. The services are copied.
func (c Config) normalized() Config {
	if c.Version == 0 {
		c.Version = ConfigVersion
	}
	c.Services = slices.Clone(c.Services)
	for i := range c.Services {
		if c.Services[i].Restart == "" {
			c.Services[i].Restart = RestartNo
		}
	}
	return c
}

// serviceLine returns the line of the i-th entry of the services list, or 0.
func serviceLine(b []byte, i int) int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	m := doc.Content[0]
	for k := 0; k+1 < len(m.Content); k += 2 {
		if m.Content[k].Value == "services" && i < len(m.Content[k+1].Content) {
			return m.Content[k+1].Content[i].Line
		}
	}
	return 0
}
