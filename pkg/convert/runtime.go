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

	"github.com/vm2image/vm2image/pkg/image"
	"github.com/vm2image/vm2image/pkg/services"
)

// selectServices picks the services to start from the VM's processes.
func (r *run) selectServices() services.Config {
	agentPID := 0
	for _, p := range r.procs {
		if len(p.Argv) > 0 && strings.HasSuffix(path.Base(p.Argv[0]), "vm2image-agent") {
			agentPID = p.PID
		}
	}
	var notes []string
	svcs := services.Select(r.procs, services.SelectOptions{AgentPID: agentPID, IncludeEnv: true,
		Notef: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }})
	cfg := services.Config{Version: services.ConfigVersion, Services: svcs, Notes: notes}
	if r.report.ServiceEnvKept = r.opts.KeepServiceEnv; !r.opts.KeepServiceEnv {
		r.report.ServiceEnvLeftOut = cfg.FilterEnv()
	}
	for _, s := range svcs {
		r.report.Services = append(r.report.Services, s.Name)
	}
	for _, p := range cfg.PublishedPorts() {
		r.report.Ports = append(r.report.Ports, fmt.Sprintf("%d/%s", p.Port, p.Proto))
	}
	return cfg
}

// runtime writes the small runtime layer: the init and services.yaml under /.vm2image.
func (r *run) runtime(ctx context.Context) error {
	r.services = r.selectServices()
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
		e.h.ModTime, e.h.Format = r.opts.Created, tar.FormatPAX
		if err := tw.WriteHeader(&e.h); err != nil {
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			return err
		}
	}
	return tw.Close()
}
