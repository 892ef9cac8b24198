// Package fleet converts many VMs in one run: an inventory (YAML) names each VM's source and its
// overrides of the fleet's defaults; conversions run a few at a time on one machine with one
// shared cache; each VM's result is saved atomically in a state directory, so a run killed midway
// resumes where it stopped; a VM that fails is recorded and the others go on; a summary table
// ends the run. The conversion itself is the caller's (cmd/vm2image builds it from the same
// options as "convert"): this package schedules, records and summarises.
package fleet
