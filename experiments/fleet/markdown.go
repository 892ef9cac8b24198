package main

import (
	"fmt"
	"strings"
)

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// markdown writes results.md: the fleet, per VM what each strategy uploaded, the registry after
// each VM, the totals against the floor and the goal, what the layers are, the warm run, and
// the images' services and verify.
func markdown(res *Results) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# Fleet experiment (issue 14)\n\n")
	w("Run %s, %s workers (converter-image containers run as the Indexed Job's pods), load %s at the start, %s at the end.\n",
		res.Date, res.Meta["workers"], res.Meta["load_start"], res.Meta["load_end"])
	w("Written by `experiments/fleet.sh` from `experiments/fleet.yaml`. MiB = 2^20 bytes.\n\n")

	w("## The fleet\n\n| VM | release | profile | packages (and their dependencies) |\n|---|---|---|---|\n")
	for _, vm := range res.VMs {
		w("| %s | %s | %s | %s |\n", vm.Name, vm.Suite, vm.Profile, strings.Join(vm.Packages, ", "))
	}

	w("\n## Per VM: bytes uploaded (MiB), layers new+already in the registry, pod seconds\n\n")
	w("| VM | one layer per VM | per install set | package-grained | warm second run (grained) |\n|---|---|---|---|---|\n")
	for _, vm := range res.VMs {
		w("| %s | %s |", vm.Name, cell(res.Runs["one-layer"], vm.Name, false))
		for _, run := range []string{"single", "grained", "warm"} {
			w(" %s |", cell(res.Runs[run], vm.Name, true))
		}
		w("\n")
	}

	for _, run := range []string{"single", "grained", "warm"} {
		for vm, e := range res.Runs[run].Failed {
			w("\n**%s: the pod of %s failed**: %s\n", run, vm, e)
		}
	}

	w("\n## Registry bytes stored after each VM (MiB; in the order the workers finished)\n\n")
	w("Each strategy's registry holds the three bases before the first VM (per install set %s MiB, grained %s MiB); one layer per VM counts the VMs' layers only.\n\n",
		mib(res.Runs["single"].Start), mib(res.Runs["grained"].Start))
	w("| VMs | one layer per VM | per install set | package-grained | floor |\n|---|---|---|---|---|\n")
	for i := range res.VMs {
		w("| %d | %s | %s | %s | |\n", i+1, stepCell(res.Runs["one-layer"], i), stepCell(res.Runs["single"], i), stepCell(res.Runs["grained"], i))
	}
	w("| | | | | %s |\n", mib(res.Floor))
	r := res.Ratios
	w("\nFloor (every distinct file content of the fleet's roots, gzip -6 each once): %s MiB.\n\n", mib(res.Floor))
	w("- package-grained / per install set: **%.2fx** (goal <= 0.6x: %s)\n", r["grained_per_single"], verdict(r["grained_per_single"] <= 0.6))
	if s := res.Runs["single"]; s != nil && len(s.Steps) > 0 {
		if goal := 0.6 * float64(s.Steps[len(s.Steps)-1].Stored); goal < float64(res.Floor) {
			w("  (0.6x of per install set is %s MiB, below the floor of %s MiB: reaching it would take less than one gzip copy of each distinct file of the fleet)\n",
				mib(int64(goal)), mib(res.Floor))
		}
	}
	w("- package-grained / floor: **%.2fx** (goal <= 1.3x: %s)\n", r["grained_per_floor"], verdict(r["grained_per_floor"] <= 1.3))
	w("- per install set / floor: %.2fx; one layer per VM / floor: %.2fx; package-grained / one layer per VM: %.2fx\n",
		r["single_per_floor"], r["one_layer_per_floor"], r["grained_per_one_layer"])

	w("\n## What the registries hold, by layer role (distinct layers of the fleet's images)\n\n")
	for _, run := range []string{"single", "grained"} {
		w("%s:", map[string]string{"single": "Per install set", "grained": "Package-grained"}[run])
		for _, role := range sortedRoles(res.Runs[run].Roles) {
			rb := res.Runs[run].Roles[role]
			w(" %s %d layers %s MiB;", role, rb.Layers, mib(rb.Bytes))
		}
		w("\n\n")
	}

	w("## The two workers share through the registry\n\nEach worker has a cache of its own; layers of its images that an image the other worker had finished before already held (base layers left out): per install set %d (%s MiB), package-grained %d (%s MiB).\n\n",
		res.Runs["single"].FromOtherWorker.Layers, mib(res.Runs["single"].FromOtherWorker.Bytes),
		res.Runs["grained"].FromOtherWorker.Layers, mib(res.Runs["grained"].FromOtherWorker.Bytes))

	w("Where the workers took their images' layers (base layers left out; the cache repository is in each strategy's registry):\n\n| run | built | local cache (the worker's own) | registry cache (shared) | installs run |\n|---|---|---|---|---|\n")
	for _, run := range []string{"single", "grained", "warm"} {
		rr := res.Runs[run]
		if rr == nil {
			continue
		}
		src := func(k string) string {
			return fmt.Sprintf("%d (%s MiB)", rr.Sources[k].Layers, mib(rr.Sources[k].Bytes))
		}
		w("| %s | %s | %s | %s | %d of %d |\n", run, src("built"), src("local cache"), src("registry cache"), rr.Installs, len(rr.Steps))
	}
	w("\n")

	w("## Warm second run\n\nThe whole fleet converted again into the grained registry (new pods, the workers' caches kept): blobs the registry did not hold before it:")
	if len(res.WarmNew) == 0 {
		w(" none.\n")
	} else {
		for _, role := range sortedRoles(res.WarmNew) {
			w(" %s: %d (%s MiB);", role, res.WarmNew[role].Layers, mib(res.WarmNew[role].Bytes))
		}
		w("\n")
	}
	var up, upPkg int64
	for _, st := range res.Runs["warm"].Steps {
		up += st.Uploaded
	}
	for role, rb := range res.WarmNew {
		if strings.HasPrefix(role, "package") {
			upPkg += rb.Bytes
		}
	}
	w("Uploaded by the warm run in all: %s MiB; of it package layers (package, packages-bundle, packages-config): %s MiB.\n", mib(up), mib(upPkg))

	w("\n## The images run their services; verify against the VM's root\n\n| VM | check | result | verify |\n|---|---|---|---|\n")
	for _, c := range res.Checks {
		w("| %s | `%s` | %s | %s |\n", c.VM, strings.ReplaceAll(c.Check, "|", "\\|"), strings.ReplaceAll(c.Result, "|", "\\|"), res.Verify[c.VM])
	}
	return b.String()
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func find(r *Run, vm string) *Step {
	if r == nil {
		return nil
	}
	for i := range r.Steps {
		if r.Steps[i].VM == vm {
			return &r.Steps[i]
		}
	}
	return nil
}

func cell(r *Run, vm string, layers bool) string {
	st := find(r, vm)
	if st == nil {
		return "-"
	}
	if !layers {
		return mib(st.Uploaded)
	}
	return fmt.Sprintf("%s / %d+%d / %.0f s", mib(st.Uploaded), st.LayersNew, st.LayersExisting, st.Seconds)
}

func stepCell(r *Run, i int) string {
	if r == nil || i >= len(r.Steps) {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", mib(r.Steps[i].Stored), r.Steps[i].VM)
}
