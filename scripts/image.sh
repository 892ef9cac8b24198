#!/usr/bin/env bash
# make image: the converter image a fleet's workers run (vm2image fleet k8s; docker run): the
# static vm2image, vm2image-init and vm2image-agent on a Debian bookworm root (debootstrap
# minbase with ca-certificates, cached like the test roots), imported into the Docker engine.
# No Docker Hub here, so no Dockerfile FROM: the root is made, then imported.
#   IMAGE_TAG   the tag (default vm2image:VERSION, also tagged vm2image:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ "$(id -u)" -eq 0 ] || { echo "image: run as root (debootstrap)" >&2; exit 1; }
version=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
tag=${IMAGE_TAG:-vm2image:$version}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/mkroot" ./internal/testenv/mkroot
root=$("$work/mkroot" converter)
mkdir -p "$work/add/usr/local/bin"
ldflags="-s -w -X github.com/vm2image/vm2image/pkg/vmread.Version=$version"
for b in vm2image:./cmd/vm2image vm2image-init:./cmd/vm2image-init vm2image-agent:./cmd/agent; do
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/add/usr/local/bin/${b%%:*}" "${b#*:}"
done
tar --numeric-owner --xattrs -cf - -C "$root" . -C "$work/add" usr/local/bin/vm2image usr/local/bin/vm2image-init usr/local/bin/vm2image-agent |
	docker import \
		--change 'ENTRYPOINT ["/usr/local/bin/vm2image"]' \
		--change 'ENV VM2IMAGE_INIT=/usr/local/bin/vm2image-init' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change "LABEL org.opencontainers.image.title=vm2image org.opencontainers.image.version=$version" \
		- "$tag" >/dev/null
[ -n "${IMAGE_TAG:-}" ] || docker tag "$tag" vm2image:latest
echo "$tag"
