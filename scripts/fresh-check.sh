#!/usr/bin/env bash
# Proves that scripts/setup.sh installs every tool the tests need on a machine that has nothing
# else: it runs setup.sh in a clean Debian bookworm root (debootstrap minbase) in namespaces of its
# own, then checks that every command the tests need is found there. Part of `make test`.
#
# The clean root is built once and cached, keyed by its recipe, under
# /var/cache/vm2image-test/fresh-check (0700); each run works on an overlay of it (a copy where
# overlays cannot be mounted), so the cached root stays clean. Downloaded packages and apt's
# lists are kept across runs in the same directory, so a warm run downloads almost nothing.
# Runs are serialised by a lock there: concurrent runs build the root once.
#
#   scripts/fresh-check.sh          the check (root, Debian's mirror)
#   scripts/fresh-check.sh --list   print the commands it checks, one a line, and stop
#
# The commands checked are derived from the source, so a new test requirement is checked without
# editing this script: setup.sh's own table (setup.sh --list-tools), every literal argument of
# testenv.RequireCommands, and every literal command Go code runs (exec.Command, CommandContext,
# LookPath, the tests' run(t, "cmd", ...) helpers), less the project's own binaries below.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# Built by the project itself (go build, the tests), not installed: never checked. /listener is a
# test binary copied into a chroot (pkg/procs). Relative paths (../../scripts/image.sh) are the
# repository's own scripts.
own='go vm2image vm2image-agent vm2image-init /listener'

required_tools() {
	{
		bash scripts/setup.sh --list-tools
		grep -rhoE --include='*.go' 'RequireCommands\([A-Za-z_]+(, *"[^"]+")+' . | grep -oE '"[^"]+"' | tr -d '"'
		grep -rhoE --include='*.go' 'exec\.(Command|LookPath)\("[^"]+"|exec\.CommandContext\([A-Za-z_.()]+, "[^"]+"|\brun\(t, "[^"]+"' . |
			grep -oE '"[^"]+"$' | tr -d '"'
	} | grep -vxF -f <(tr ' ' '\n' <<<"$own") | grep -vE '^\.\.?/' | sort -u
}

if [ "${1:-}" = --list ]; then
	required_tools
	exit 0
fi
# cannot REASON: skipped like an integration test, or a failure when they are required (CI).
cannot() {
	if [ "${VM2IMAGE_REQUIRE_INTEGRATION:-}" = 1 ]; then
		echo "fresh-check: VM2IMAGE_REQUIRE_INTEGRATION=1 but the check cannot run: $1" >&2
		exit 1
	fi
	echo "fresh-check: skipped: $1"
	exit 0
}
[ "$(id -u)" -eq 0 ] || cannot "needs root (debootstrap, mounts, chroot)"
for c in debootstrap unshare chroot flock git; do
	command -v "$c" >/dev/null || cannot "$c is missing (scripts/setup.sh installs it)"
done
mapfile -t tools < <(required_tools)

cache=${VM2IMAGE_FRESH_CACHE:-/var/cache/vm2image-test/fresh-check}
suite=bookworm variant=minbase mirror=http://deb.debian.org/debian
recipe="debootstrap --variant=$variant $suite $mirror"
key=$(printf '%s\n' "$recipe" | sha256sum | cut -c1-12)
base=$cache/root-$suite-$variant-$key
mkdir -p "$cache"
chmod 0700 "$cache"
mkdir -p "$cache/apt-archives/partial" "$cache/apt-lists/partial"

exec 9>"$cache/lock"
flock 9
rm -rf "$cache"/run.* # left by a run that was killed; none runs now
start=$(date +%s)
if [ ! -e "$base/etc/os-release" ]; then
	echo "fresh-check: building the clean root: $recipe (cached in $base)"
	rm -rf "$base.building"
	if ! debootstrap --variant="$variant" "$suite" "$base.building" "$mirror" >"$cache/debootstrap.log" 2>&1; then
		tail -n 30 "$cache/debootstrap.log" >&2
		echo "fresh-check: debootstrap failed (log: $cache/debootstrap.log)" >&2
		exit 1
	fi
	mv "$base.building" "$base"
fi

run=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$run"' EXIT
mkdir "$run/upper" "$run/work" "$run/root"
# The repository as it is in this work tree (committed or not, less what git ignores).
git ls-files -z -co --exclude-standard | tar --null -T - -cf "$run/repo.tar"
# Apt sources for Debian's mirror: the host's when they name it (same suites and security), else
# the root's own (debootstrap wrote its mirror).
: >"$run/sources"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -q 'deb\.debian\.org' "$f" && printf '%s\n' "$f" >>"$run/sources"
done
printf '%s\n' "${tools[@]}" >"$run/tools"

# Inside new mount, pid and uts namespaces: the overlay, /proc, /sys, a small /dev, the caches,
# then setup.sh chrooted with a clean environment, then the tool check. Every mount and process
# of the run ends with the namespaces.
inside='set -euo pipefail
R=$RUN/root
if ! mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$RUN/upper,workdir=$RUN/work" "$R" 2>/dev/null; then
	echo "fresh-check: no overlay here; copying the clean root"
	cp -a "$BASE/." "$R/"
fi
hostname fresh-check
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
	set -- $n; mknod -m 666 "$R/dev/$1" c "$2" "$3"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
for i in 0 1 2; do ln -s /proc/self/fd/$i "$R/dev/$(echo stdin stdout stderr | cut -d" " -f$((i + 1)))"; done
mount -t tmpfs tmpfs "$R/dev/shm"
mount --bind "$CACHE/apt-archives" "$R/var/cache/apt/archives"
mount --bind "$CACHE/apt-lists" "$R/var/lib/apt/lists"
rm -f "$R/etc/resolv.conf"
cp /etc/resolv.conf "$R/etc/resolv.conf"
if [ -s "$RUN/sources" ]; then
	rm -f "$R/etc/apt/sources.list"
	while read -r f; do cp "$f" "$R/etc/apt/sources.list.d/"; done <"$RUN/sources"
fi
# A chroot starts no services (docker.io would), and dpkg need not sync every file.
printf "#!/bin/sh\nexit 101\n" >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
echo force-unsafe-io >"$R/etc/dpkg/dpkg.cfg.d/fresh-check"
mkdir "$R/src"
tar -C "$R/src" -xf "$RUN/repo.tar"
cp "$RUN/tools" "$R/tools"
env=(/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
	DEBIAN_FRONTEND=noninteractive VM2IMAGE_SETUP_NO_ENGINE=1)
chroot "$R" "${env[@]}" bash -c "cd /src && ./scripts/setup.sh"
chroot "$R" "${env[@]}" bash -c '\''
	missing=0
	while read -r t; do
		if p=$(command -v "$t"); then printf "fresh-check: %-40s %s\n" "$t" "$p"
		else echo "fresh-check: MISSING $t" >&2; missing=1; fi
	done </tools
	v=/usr/local/libexec/vm2image/vercmp
	[ "$($v 1:1.0 2.0-1)" = 1 ] && [ "$($v 1.0a 1.0)" = -1 ] && [ "$($v 1.5 1.5-1)" = 0 ] ||
		{ echo "fresh-check: $v does not answer as pacman does" >&2; missing=1; }
	exit $missing
'\'
if ! RUN=$run BASE=$base CACHE=$cache unshare --mount --pid --uts --fork --kill-child --propagation private \
	bash -c "$inside" >"$run/log" 2>&1; then
	cat "$run/log" >&2
	echo "fresh-check: FAILED: scripts/setup.sh does not give a clean $suite root every tool the tests need" >&2
	exit 1
fi
grep '^fresh-check: ' "$run/log" || true
grep '^setup: ' "$run/log" || true
echo "fresh-check: ok: ${#tools[@]} commands found in a clean $suite root after scripts/setup.sh ($(($(date +%s) - start))s)"
