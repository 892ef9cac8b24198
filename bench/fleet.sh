#!/usr/bin/env bash
# Fleet storage benchmark: the registry bytes a fleet of VMs with overlapping package sets costs,
# per layering strategy, all in one run, each strategy pushing to a registry of its own
# (Debian's docker-registry on 127.0.0.1):
#   one-layer   each VM's whole filesystem as one gzip layer (vm2image export | gzip)
#   install-set vm2image fleet convert --package-layers single: base, one packages layer per
#               distinct install set, the VM's diff, the runtime layer
#   grained     vm2image fleet convert --package-layers grained: a layer per package payload,
#               shared by digest, a bundle, a configuration layer, the diff, the runtime layer
#   floor       the distinct file contents of the whole fleet, each gzip-compressed once
# Prints, per VM in order, the registry's stored bytes after it for each strategy, the bytes
# uploaded, and the ratios. The VMs are cached fixture roots (built once by debootstrap):
#   FLEET="name:recipe ..."   recipe: web, base, bench, converter or pkgs:SUITE:PKG,PKG
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
[ -x bin/vm2image ] && [ -x bin/vm2image-init ] || make build >/dev/null
fleet=${FLEET:-"web1:web web2:pkgs:bookworm:nginx-light,libcap2-bin tools:converter bare:base app:bench"}
work=$(mktemp -d /var/tmp/vm2image-fleet-XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/mkroot" ./internal/testenv/mkroot
base_root=$("$work/mkroot" base)
docker image inspect debian:bookworm >/dev/null 2>&1 || tar -C "$base_root" --numeric-owner -cf - . | docker import - debian:bookworm >/dev/null

registry() { # registry NAME: starts a registry (not in a subshell: its pid must reach cleanup), sets REG
	local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mkdir -p "$work/reg-$1"
	printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/reg-$1/data" "$port" > "$work/reg-$1/config.yml"
	docker-registry serve "$work/reg-$1/config.yml" > "$work/reg-$1/log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
	REG="127.0.0.1:$port"
}
blobs() { du -sb "$work/reg-$1/data/docker/registry/v2/blobs" 2>/dev/null | cut -f1 || echo 0; }

inv="$work/fleet.yaml"
echo "vms:" > "$inv"
names=()
for vm in $fleet; do
	name=${vm%%:*} recipe=${vm#*:}
	case $recipe in pkgs:*) IFS=: read -r _ suite pk <<< "$recipe"; root=$("$work/mkroot" pkgs "$suite" "$pk") ;; *) root=$("$work/mkroot" "$recipe") ;; esac
	printf '  - name: %s\n    source: dir:%s\n' "$name" "$root" >> "$inv"
	names+=("$name")
	echo "$name $root" >> "$work/roots"
done

# one-layer: the whole VM compressed, cumulative (no two VMs share it).
total=0
for n in "${names[@]}"; do
	root=$(awk -v n="$n" '$1==n {print $2}' "$work/roots")
	sz=$(bin/vm2image export "dir:$root" 2>/dev/null | gzip -6 | wc -c)
	total=$((total + sz)); echo "$n $total $sz" >> "$work/one-layer"
done

for strategy in single grained; do
	registry "$strategy"
	reg=$REG
	for n in "${names[@]}"; do
		# One VM at a time, so the registry's size is read after each.
		VM2IMAGE_INIT=$PWD/bin/vm2image-init bin/vm2image fleet convert "$inv" --index "$(printf '%s\n' "${names[@]}" | grep -nx "$n" | cut -d: -f1 | awk '{print $1-1}')" \
			--push "$reg/fleet" --state "$work/state-$strategy" --package-layers "$strategy" --base docker-daemon:debian:bookworm \
			--jobs 1 > "$work/$strategy-$n.log" 2>&1 || { echo "fleet convert $n ($strategy) failed:"; tail -20 "$work/$strategy-$n.log"; exit 1; }
		up=$(python3 -c "import json; r=json.load(open('$work/state-$strategy/$n.json')); print(r['bytes_uploaded'], r['layers_new'], r['layers_existing'], round(r['seconds'],1))")
		echo "$n $(blobs "$strategy") $up" >> "$work/$strategy"
	done
done

# floor: every distinct file content of the fleet, gzip-compressed once.
floor=$(awk '{print $2}' "$work/roots" | xargs python3 scripts/floor.py)

mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b/1048576}'; }
echo "fleet: ${names[*]} (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| after VM | one layer per VM | per install set (stored / uploaded / layers new+there / s) | package-grained (stored / uploaded / layers new+there / s) |"
echo "|---|---|---|---|"
for n in "${names[@]}"; do
	read -r _ one _ < <(grep "^$n " "$work/one-layer")
	read -r _ s_st s_up s_new s_there s_t < <(grep "^$n " "$work/single")
	read -r _ g_st g_up g_new g_there g_t < <(grep "^$n " "$work/grained")
	echo "| $n | $(mib "$one") MiB | $(mib "$s_st") MiB / $(mib "$s_up") MiB / $s_new+$s_there / $s_t | $(mib "$g_st") MiB / $(mib "$g_up") MiB / $g_new+$g_there / $g_t |"
done
s_last=$(tail -1 "$work/single" | cut -d' ' -f2); g_last=$(tail -1 "$work/grained" | cut -d' ' -f2); o_last=$(tail -1 "$work/one-layer" | cut -d' ' -f2)
echo
echo "floor (distinct file contents, gzip -6 each): $(mib "$floor") MiB"
awk -v g="$g_last" -v s="$s_last" -v o="$o_last" -v f="$floor" 'BEGIN {
	printf "package-grained / per install set: %.2fx; package-grained / floor: %.2fx; per install set / floor: %.2fx; one layer per VM / floor: %.2fx\n", g/s, g/f, s/f, o/f }'
