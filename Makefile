# vm2image: build, test, lint, demo. `make demo` and `make test` install what they need
# (scripts/setup.sh) on a Debian machine as root.
export PATH := /usr/local/go/bin:$(PATH)
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/vm2image/vm2image/pkg/vmread.Version=$(VERSION)
FUZZTIME  ?= 3s
TESTFLAGS ?=

.PHONY: all build agents image setup fresh-check test unit fuzz lint bench demo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vm2image ./cmd/vm2image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vm2image-agent ./cmd/agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/vm2image-init ./cmd/vm2image-init

# The agent for every architecture it supports (static, stripped).
agents:
	for arch in amd64 arm64 386; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o $(BIN)/vm2image-agent-linux-$$arch ./cmd/agent || exit 1; \
	done

# The converter image fleet workers run (vm2image fleet k8s, or docker run): static binaries on a
# debootstrap bookworm root, imported into the engine as vm2image:VERSION and vm2image:latest.
image: setup
	./scripts/image.sh

setup:
	./scripts/setup.sh

# setup.sh, run in a clean debootstrap bookworm root, gives it every tool the tests need.
fresh-check: setup
	./scripts/fresh-check.sh

# Every test: unit and integration (root, debootstrap, Docker engine), the README's first hour
# played on a fixture VM (scripts/walkthrough.sh), then a short fuzz run.
test: setup fresh-check build lint
	$(GO) test -count=1 -timeout 60m $(TESTFLAGS) ./...
	./scripts/walkthrough.sh
	./scripts/fuzz.sh $(FUZZTIME)

unit:
	$(GO) test -short -count=1 ./...

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The shell benchmarks, each against its baseline in the same run: bench/stream.sh (the agent's
# stream against tar | zstd) and bench/diff.sh (diff -o against the 2014 rsync + tar pipeline).
# Each prints a Markdown table on stdout (docs/benchmarks.md records measured runs). Not run
# here: bench/convert.sh (needs a booted fixture VM and the engine) and the Go benchmarks
# (go test -run '^$' -bench . ./pkg/...).
bench: setup build
	./bench/stream.sh
	./bench/diff.sh

demo: setup build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
