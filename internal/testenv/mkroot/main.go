// Command mkroot builds (or finds) a cached fixture root and prints its path; with "boot" it also
// starts the fixture as a small VM with its agent and runs until interrupted.
//
//	go run ./internal/testenv/mkroot [web|base|bench|converter]
//	go run ./internal/testenv/mkroot pkgs SUITE PKG,PKG...
//	go run ./internal/testenv/mkroot boot DIR AGENT-BINARY TOKEN-FILE LISTEN-ADDR [web|bench]
//	go run ./internal/testenv/mkroot boot DIR - - -     (no agent: prints "vm PID nginx N app M")
package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vm2image/vm2image/internal/fixture"
	"github.com/vm2image/vm2image/internal/testenv"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) > 1 && os.Args[1] == "boot" {
		if len(os.Args) != 6 && len(os.Args) != 7 {
			log.Fatal("usage: mkroot boot DIR AGENT-BINARY TOKEN-FILE LISTEN-ADDR [web|bench]")
		}
		boot(os.Args[2], os.Args[3], os.Args[4], os.Args[5], recipeOf(os.Args[6:]))
		return
	}
	dir, err := testenv.BuildRoot(recipeOf(os.Args[1:]), log.Printf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(dir)
}

// benchVM is the conversion benchmark's VM (bench/convert.sh): the WebVM fixture (its services
// and odd files) grown to the shape of a small real server, about 240 packages and 900 MB: a
// database, a Python web stack, sshd, git, an editor and the usual tools.
var benchVM = testenv.Recipe{
	Suite: "bookworm",
	Packages: append(append([]string(nil), testenv.WebVM.Packages...), "postgresql", "python3-flask",
		"openssh-server", "git", "curl", "vim", "rsync", "cron", "sudo", "less", "procps", "iproute2",
		"ca-certificates", "python3-pip", "make", "gcc", "wget", "unzip", "lsof", "strace", "tcpdump", "htop", "jq", "man-db"),
	// About 100 MB of the VM's own: an application with a copy of a Python tree, its data, logs.
	Script: testenv.WebVM.Script + `
mkdir -p /opt/app /var/lib/app /var/log/app
cp -a /usr/lib/python3 /opt/app/lib
cp -a /usr/share/doc /opt/app/doc
head -c 30000000 /dev/urandom > /var/lib/app/data.bin
seq 1 4000000 | sed 's/$/ GET \/index.html 200/' > /var/log/app/access.log
`,
}

// recipeOf names the recipe of the first argument: web (default), base or bench.
func recipeOf(args []string) testenv.Recipe {
	if len(args) == 0 {
		return testenv.WebVM
	}
	switch args[0] {
	case "base":
		return testenv.Bookworm
	case "bench":
		return benchVM
	case "web":
		return testenv.WebVM
	case "converter":
		return fixture.ConverterRecipe
	case "pkgs": // pkgs SUITE PKG,PKG...: a minbase root with those packages (bench/fleet.sh)
		if len(args) != 3 {
			log.Fatal("usage: mkroot pkgs SUITE PKG,PKG...")
		}
		return testenv.Recipe{Suite: args[1], Packages: strings.Split(args[2], ",")}
	}
	log.Fatalf("unknown recipe %q: web, base, bench or converter", args[0])
	return testenv.Recipe{}
}

// boot copies the recipe's root into dir (when dir is empty), starts it, prints where its agent
// and services listen, and waits for SIGINT or SIGTERM.
func boot(dir, agentBin, tokenFile, addr string, recipe testenv.Recipe) {
	root, err := testenv.BuildRoot(recipe, log.Printf)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat(dir + "/etc/os-release"); err != nil {
		if out, err := exec.Command("cp", "-a", root+"/.", dir+"/").CombinedOutput(); err != nil {
			log.Fatalf("copying the fixture root: %v %s", err, out)
		}
	}
	var tok []byte
	if agentBin == "-" {
		agentBin = ""
	} else if tok, err = os.ReadFile(tokenFile); err != nil {
		log.Fatal(err)
	}
	vm, err := testenv.BootWebVM(dir, agentBin, []byte(strings.TrimSpace(string(tok))), addr, os.Stderr)
	if vm != nil {
		defer vm.Stop()
	}
	if err != nil {
		log.Print(err)
		return
	}
	if agentBin == "" {
		fmt.Printf("vm %d nginx %d app %d\n", vm.InitPID(), vm.Ports["nginx"], vm.Ports["app"])
	} else {
		fmt.Printf("agent %s nginx %d app %d fingerprint %s\n", vm.Addr, vm.Ports["nginx"], vm.Ports["app"], vm.Fingerprint)
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
}
