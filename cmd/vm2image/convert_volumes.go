package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vm2image/vm2image/internal/units"
	"github.com/vm2image/vm2image/pkg/convert"
)

// volumeOptions checks --volume and --volumes.
func (o *convertOptions) volumeOptions() ([]string, bool, error) {
	switch o.volumesMode {
	case "", convert.VolumesAuto:
	default:
		return nil, false, usage(fmt.Errorf("unknown --volumes %q: want auto (or --volume PATH)", o.volumesMode))
	}
	auto := o.volumesMode == convert.VolumesAuto
	if (auto || len(o.volumes) > 0) && o.output == "" {
		return nil, false, usage(errors.New("--volume and --volumes need -o FILE: the volume archives are written beside it"))
	}
	check := convert.Options{Output: o.output, Volumes: append([]string(nil), o.volumes...), VolumesAuto: auto}
	if err := check.CheckVolumes(); err != nil {
		return nil, false, asUsage(err)
	}
	return check.Volumes, auto, nil
}

// printVolumes says the fit verdict, which directories went into volumes, and how to load them.
func printVolumes(w io.Writer, r *convert.Report) {
	if r.Fit != nil {
		n := 0
		for _, f := range r.Fit.Findings {
			if f.Severity == "decision" {
				n++
			}
		}
		fmt.Fprintf(w, "  fit: %s (%d decisions, %d findings in the report; vm2image inspect --fit explains them)\n", r.Fit.Verdict, n, len(r.Fit.Findings))
	}
	for _, v := range r.Volumes {
		fmt.Fprintf(w, "  volume %s: %s (%d entries, %s) in %s\n", v.Name, v.Path, v.Entries, units.IEC(v.Bytes), v.Archive)
	}
	if len(r.Volumes) == 0 {
		return
	}
	fmt.Fprintln(w, "  load the volumes before the first start (compose.yaml mounts them as external volumes):")
	for _, v := range r.Volumes {
		fmt.Fprintf(w, "    docker volume create %s\n", v.Name)
		fmt.Fprintf(w, "    docker run --rm -v %s:/volume -v %s:/from:ro --entrypoint tar %s --numeric-owner --xattrs --xattrs-include='*' -xpf /from/%s -C /volume\n",
			v.Name, filepath.Dir(v.Archive), r.Image.Tag, filepath.Base(v.Archive))
	}
}
