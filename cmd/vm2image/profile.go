package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile to the file $VM2IMAGE_CPUPROFILE names, for the benchmarks
// (bench/convert.sh PROFILE=1); the function it returns ends the profile.
func startProfile() func() {
	path := os.Getenv("VM2IMAGE_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm2image: writing a CPU profile to %s: %v\n", path, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
