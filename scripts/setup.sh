#!/usr/bin/env bash
# Installs what vm2image's build, demo and tests need on Debian/Ubuntu (as root) and makes sure a
# Docker engine answers. Safe to run again: it only installs what is missing.
set -euo pipefail

need_pkgs=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2")
}
want debootstrap debootstrap
want rsync rsync
want rdiff rdiff
want skopeo skopeo
want umoci umoci
want docker-registry docker-registry
want rpm rpm
want rpmbuild rpm
want pacman pacman-package-manager
want bsdtar libarchive-tools
want zstd zstd
want getfattr attr
want setcap libcap2-bin
want pigz pigz
want eatmydata eatmydata
want curl curl
want ip iproute2
want unshare util-linux
want qemu-system-x86_64 qemu-system-x86
want mkfs.ext4 e2fsprogs
want debugfs e2fsprogs
# Debian's docker.io provides the engine (dockerd) and the client.
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "setup: missing ${need_pkgs[*]}; install them (needs root and apt-get)" >&2
		exit 0
	fi
	echo "setup: installing ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# The engine: start dockerd in the background when nothing answers.
if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1; then
	if ! docker version >/dev/null 2>&1; then
		echo "setup: starting dockerd"
		mkdir -p /var/log
		nohup dockerd >/var/log/vm2image-dockerd.log 2>&1 &
		for _ in $(seq 1 60); do
			docker version >/dev/null 2>&1 && break
			sleep 0.5
		done
		docker version >/dev/null 2>&1 || { echo "setup: dockerd did not answer; see /var/log/vm2image-dockerd.log" >&2; exit 1; }
	fi
fi
