package convert

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/procs"
	"github.com/vm2image/vm2image/pkg/services"
)

// selectServices picks the services to start: the VM's listening processes, described by the
// systemd units that started them where there are any, or the VM's enabled units when the
// source has no processes.
func (r *run) selectServices(ctx context.Context) (services.Config, error) {
	agentPID := 0
	for _, p := range r.procs {
		if len(p.Argv) > 0 && strings.HasSuffix(path.Base(p.Argv[0]), "vm2image-agent") {
			agentPID = p.PID
		}
	}
	var notes []string
	svcs := services.Select(r.procs, services.SelectOptions{AgentPID: agentPID, IncludeEnv: true,
		Notef: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }})
	cfg := services.Config{Version: services.ConfigVersion, Services: svcs, Notes: notes, StopOnFailure: r.opts.StopOnFailure}
	m := r.unitTree(ctx)
	services.FromUnits(&cfg, m, services.UnitOptions{Include: r.opts.IncludeServices, Skip: r.opts.SkipServices,
		NoProcesses: !hasUserProcesses(r.procs), CronInUse: cronInUse(m),
		Notef: func(format string, args ...any) { cfg.Notes = append(cfg.Notes, fmt.Sprintf(format, args...)) }})
	for i := range cfg.Services {
		if contains(r.opts.MainServices, cfg.Services[i].Name) {
			cfg.Services[i].Main = true
		}
	}
	// After the units had their say: their Environment= and EnvironmentFile= go through the
	// same allowlist as the processes' environments.
	if r.report.ServiceEnvKept = r.opts.KeepServiceEnv; !r.opts.KeepServiceEnv {
		r.report.ServiceEnvLeftOut = cfg.FilterEnv()
	}
	for _, s := range cfg.Services {
		r.report.Services = append(r.report.Services, s.Name)
		r.report.ServiceSources = append(r.report.ServiceSources, ServiceSource{Name: s.Name, Source: s.Source, Unit: s.Unit})
	}
	for _, s := range cfg.Skipped {
		r.report.SkippedServices = append(r.report.SkippedServices, ServiceSource{Name: s.Name, Unit: s.Unit, Reason: s.Reason})
	}
	if len(cfg.Services) == 0 {
		msg := "no services found: the image will start nothing (give a command to docker run, or --service NAME)"
		r.opts.Warnf("WARNING: %s", msg)
		if r.opts.RequireServices {
			return cfg, fmt.Errorf("%w: %s", ErrNoServices, msg)
		}
	}
	for _, p := range cfg.PublishedPorts() {
		r.report.Ports = append(r.report.Ports, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	return cfg, nil
}

// hasUserProcesses reports whether the source listed processes other than kernel threads.
func hasUserProcesses(ps []procs.Process) bool {
	for _, p := range ps {
		if !p.Kernel && p.PID != 0 {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runtime writes the small runtime layer: the init and services.yaml under /.vm2image.
func (r *run) runtime(ctx context.Context) error {
	var err error
	if r.services, err = r.selectServices(ctx); err != nil {
		return err
	}
	var conf bytes.Buffer
	if err := services.WriteServicesYAML(&conf, r.services); err != nil {
		return err
	}
	r.servicesYAML = conf.Bytes()
	init, err := os.ReadFile(r.opts.InitBinary)
	if err != nil {
		return fmt.Errorf("reading the init binary: %w", err)
	}
	p := filepath.Join(r.work, "runtime.layer.tar")
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	if err := r.writeRuntimeTar(bw, init, conf.Bytes()); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	r.layers = append(r.layers, image.LayerFile{Path: p, Comment: "vm2image: runtime (init, services.yaml)"})
	r.roles = append(r.roles, "runtime")
	return nil
}

// runtimeLayerTime is the modification time of the runtime layer's entries.
var runtimeLayerTime = time.Unix(0, 0).UTC()

func (r *run) writeRuntimeTar(w io.Writer, init, conf []byte) error {
	tw := tar.NewWriter(w)
	dir := strings.TrimPrefix(path.Dir(services.InitPath), "/")
	hdrs := []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: strings.TrimPrefix(services.InitPath, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(init))}, init},
		{tar.Header{Name: strings.TrimPrefix(services.ServicesPath, "/"), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(conf))}, conf},
	}
	for _, e := range hdrs {
		// A fixed time, not the image's creation: the layer's bytes then depend only on the
		// init and services.yaml, so converting a VM again gives the same blob, which a
		// registry already holds.
		e.h.ModTime, e.h.Format = runtimeLayerTime, tar.FormatPAX
		if err := tw.WriteHeader(&e.h); err != nil {
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			return err
		}
	}
	return tw.Close()
}
