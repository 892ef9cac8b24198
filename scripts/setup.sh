#!/usr/bin/env bash
# Installs what vm2image's build, tests, demo and benchmarks need on Debian (as root), all from
# Debian's packages: the commands of the table below, pacman's version oracle built from
# scripts/vercmp.c against libalpm, and a running Docker engine. Only git, make and Go must be
# there before. Safe to run again: it installs only what is missing, and rebuilds vercmp only
# when its source, libalpm or gcc changed.
#
#   VM2IMAGE_SETUP_NO_ENGINE=1    install the engine but do not start dockerd (a chroot, CI
#                                 checks of a fresh root: scripts/fresh-check.sh)
#   scripts/setup.sh --list-tools print every command this script provides, one a line, and stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Every command a test, the demo or a benchmark runs on the host, and the Debian package that
# provides it. scripts/fresh-check.sh checks each of them, and every command the tests name in
# testenv.RequireCommands or run through exec, in a clean Debian root after this script ran there.
tools='
debootstrap            debootstrap
chroot                 coreutils
truncate               coreutils
xz                     xz-utils
rsync                  rsync
rdiff                  rdiff
skopeo                 skopeo
umoci                  umoci
docker                 docker.io
dockerd                docker.io
docker-registry        docker-registry
rpm                    rpm
rpmbuild               rpm
rpm2archive            rpm2cpio
dnf                    dnf
zypper                 zypper
createrepo_c           createrepo-c
busybox                busybox-static
repo-add               pacman-package-manager
makepkg                makepkg
pacman                 pacman-package-manager
bsdtar                 libarchive-tools
tar                    tar
zstd                   zstd
pigz                   pigz
getfattr               attr
setcap                 libcap2-bin
eatmydata              eatmydata
curl                   curl
ip                     iproute2
mount                  mount
unshare                util-linux
setpriv                util-linux
script                 bsdutils
/usr/bin/python3       python3
/usr/bin/time          time
gcc                    gcc
dpkg-deb               dpkg
dpkg-scanpackages      dpkg-dev
apt-ftparchive         apt-utils
mkfs.ext4              e2fsprogs
debugfs                e2fsprogs
qemu-system-x86_64     qemu-system-x86
qemu-img               qemu-utils
guestfish              libguestfs-tools
sfdisk                 fdisk
blkid                  util-linux
nsenter                util-linux
losetup                mount
cryptsetup             cryptsetup-bin
mkfs.xfs               xfsprogs
mkfs.btrfs             btrfs-progs
lvm                    lvm2
'

# Pacman's version oracle (see scripts/vercmp.c): a path of its own rather than a "vercmp" on
# every user's PATH, so it never shadows or passes for a vercmp that a pacman package installs.
vercmp_dir=/usr/local/libexec/vm2image
vercmp_bin=/usr/local/libexec/vm2image/vercmp # built below (build_vercmp); the tests require this path

if [ "${1:-}" = --list-tools ]; then
	awk 'NF == 2 { print $1 }' <<<"$tools"
	echo "$vercmp_bin"
	exit 0
fi

need_pkgs=()
while read -r cmd pkg; do
	[ -n "$cmd" ] || continue
	command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done <<<"$tools"
# What building the oracle needs besides gcc: the C library's headers (only a recommendation of
# gcc's), libalpm's, and libarchive's, which alpm.h includes (libalpm-dev does not depend on it).
[ -e /usr/include/stdint.h ] || need_pkgs+=(libc6-dev)
[ -e /usr/include/alpm.h ] || need_pkgs+=(libalpm-dev)
[ -e /usr/include/archive.h ] || need_pkgs+=(libarchive-dev)
# libguestfs's appliance (disk: sources) boots the host's kernel: Debian's, readable by root.
compgen -G '/boot/vmlinuz-*' >/dev/null || need_pkgs+=(linux-image-amd64)
# The test RPM distribution packages /bin/busybox as its shell: it must be the static one.
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need_pkgs+=(busybox-static)

if [ "${#need_pkgs[@]}" -gt 0 ]; then
	mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "setup: missing ${need_pkgs[*]}; install them (needs root and apt-get)" >&2
		exit 0
	fi
	echo "setup: installing ${need_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# build_vercmp compiles scripts/vercmp.c when the binary is missing or was built from another
# source, libalpm or compiler (the key file beside it says which), and installs it atomically.
build_vercmp() {
	local src=$here/vercmp.c key tmp
	key=$({
		sha256sum <"$src"
		dpkg-query -W -f '${Package} ${Version}\n' libalpm-dev 2>/dev/null || true
		gcc -dumpfullversion
	} | sha256sum | cut -d' ' -f1)
	if [ -x "$vercmp_bin" ] && [ "$(cat "$vercmp_bin.key" 2>/dev/null)" = "$key" ]; then
		return 0
	fi
	echo "setup: building $vercmp_bin from scripts/vercmp.c (libalpm)"
	mkdir -p "$vercmp_dir"
	tmp=$(mktemp "$vercmp_dir/.vercmp.XXXXXX")
	if ! gcc -O2 -Wall -Wextra -Werror -o "$tmp" "$src" -lalpm; then
		rm -f "$tmp"
		echo "setup: building vercmp failed" >&2
		return 1
	fi
	chmod 755 "$tmp"
	mv -f "$tmp" "$vercmp_bin"
	printf '%s\n' "$key" >"$vercmp_bin.key.tmp"
	mv -f "$vercmp_bin.key.tmp" "$vercmp_bin.key"
}
if [ "$(id -u)" -eq 0 ]; then
	build_vercmp
else
	echo "setup: not root: not building $vercmp_bin" >&2
fi

# The engine: start dockerd in the background when nothing answers.
if [ "${VM2IMAGE_SETUP_NO_ENGINE:-}" != 1 ] && [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1; then
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
