#!/usr/bin/env bash
# Convert time from a disk: source against dir: of the same root (issue 16), all in one run:
#   dir:REF                        the baseline
#   disk:IMAGE --trust-disk        per format (raw, qcow2, vmdk, vmdk-stream, vhdx, vhd, ova)
#   disk:IMAGE (appliance)         qcow2 only (one libguestfs launch; TCG: minutes)
# Uses the disk set the tests build (go test ./cmd/vm2image -run TestDiskFormatsTrusted) and
# the engine base the tests import; --no-packages, so the figures are the reading of the source.
# Usage: bench/disk.sh [BASE_REF]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
base=${1:-docker-daemon:vm2image-test/debian:bookworm}
set_dir=$(ls -d /var/cache/vm2image-test/disks-*/ | head -1)
[ -d "$set_dir/ref" ] || { echo "no disk set: run the disk tests first" >&2; exit 1; }
bin=$(mktemp -d)/vm2image
go build -o "$bin" ./cmd/vm2image
work=$(mktemp -d)
trap 'rm -rf "$work" "$(dirname "$bin")"' EXIT
export VM2IMAGE_INIT=/bin/true LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
one() { # label, source, flags...
	local label=$1 src=$2; shift 2
	local t0 t1
	t0=$(date +%s.%N)
	"$bin" convert "$src" "$@" --no-packages --base "$base" -o "$work/out.tar" --force --work-dir "$work" >/dev/null 2>&1
	t1=$(date +%s.%N)
	printf '| %s | %.1f s |\n' "$label" "$(echo "$t1 - $t0" | bc)"
}
echo "| source | convert --no-packages |"
echo "|---|---|"
one "dir: (baseline)" "dir:$set_dir/ref"
for f in raw qcow2 vmdk vmdk-stream vhdx vhd ova; do
	one "disk: $f --trust-disk ($(du -h --apparent-size "$set_dir/disk.$f" | cut -f1))" "disk:$set_dir/disk.$f" --trust-disk
done
one "disk: qcow2, appliance" "disk:$set_dir/disk.qcow2"
one "dir: (baseline, again)" "dir:$set_dir/ref"
