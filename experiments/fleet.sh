#!/usr/bin/env bash
# The fleet experiment (issue 14): the VMs of experiments/fleet.yaml (12 Debian VMs over
# bookworm, bullseye and trixie in four profiles) converted with "vm2image fleet convert --push"
# by workers run as the converter image's containers, exactly as the Indexed Job that
# "vm2image fleet k8s" writes would run its pods (docker run with the pod's arguments,
# environment, capabilities and volumes; JOB_COMPLETION_INDEX set), FLEET_WORKERS (2) at a time:
# worker w runs the completion indexes w, w+2, ... Each VM is served by its agent
# (vm2image-agent --root on 127.0.0.1, one token per VM: the Job's token Secret); each
# release's base is its minbase root, pushed to the registry, given per VM in the inventory.
#
# Per strategy, each in a registry of its own (Debian's docker-registry on 127.0.0.1):
#   one-layer  each VM's filesystem as one gzip layer (vm2image export | gzip -6), cumulative
#   single     --package-layers single: one packages layer per install set
#   grained    --package-layers grained: a layer per package payload, shared by digest
#   warm       grained again, whole fleet, same registry: what a second run uploads
#   floor      every distinct file content of the fleet, gzip -6 each once
# recording after each VM the registry's stored bytes (its blob directory) and the worker's
# result (bytes uploaded, layers new and already there). Then every image of the grained run is
# started (docker run) and its services checked (the suite's checks), and "vm2image verify"
# compares it with its VM's root (dir:). The results go to FLEET_OUT
# (experiments/results/fleet): results.md, results.json, fleet.svg.
#
#   experiments/fleet.sh                      the whole experiment (about an hour here)
#   FLEET_ONLY=NAME,NAME FLEET_OUT=DIR ...    only those VMs of the suite
#   FLEET_SUITE=FILE                          another suite file
# Each worker keeps a cache of its own across its pods (a node's cache: the Job's emptyDir bound
# to one host directory per worker, pruned to FLEET_CACHE_MAX, 1500M, after each pod); the two
# workers share only the registry.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "fleet: run as root (debootstrap, docker)" >&2; exit 1; }
suite=${FLEET_SUITE:-experiments/fleet.yaml}
out=${FLEET_OUT:-experiments/results/fleet}
workers=${FLEET_WORKERS:-2}
cache_max=${FLEET_CACHE_MAX:-1500M} # each worker's cache after each pod (disk is tight here)
log() { echo "fleet: $(date -u +%T) $*" >&2; }

make build >/dev/null
work=$(mktemp -d /var/tmp/vm2image-fleetexp-XXXX)
tag=vm2image-fleetexp/converter:$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	docker ps -aq --filter "name=^fleetexp-$$-" | xargs -r docker rm -f >/dev/null 2>&1 || true
	docker rmi -f "$tag" >/dev/null 2>&1 || true
	[ -n "${FLEET_KEEP:-}" ] && { echo "fleet: kept $work" >&2; return; }
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/fleet" ./experiments/fleet
log "the converter image (make image) as $tag"
IMAGE_TAG=$tag scripts/image.sh >/dev/null

log "building the roots (cached by recipe)"
"$work/fleet" roots "$suite" > "$work/roots"
mapfile -t names < <(awk '$1=="vm" {print $2}' "$work/roots")
nvm=${#names[@]}
root_of() { awk -v n="$1" '$1=="vm" && $2==n {print $5}' "$work/roots"; }
suite_of() { awk -v n="$1" '$1=="vm" && $2==n {print $3}' "$work/roots"; }
echo "date $(date -u +%FT%TZ)" > "$work/meta"
echo "load_start $(cut -d' ' -f1-3 /proc/loadavg)" >> "$work/meta"
echo "workers $workers" >> "$work/meta"

# The one-layer strategy and the floor need only the roots: measured meanwhile.
(
	total=0
	for n in "${names[@]}"; do
		sz=$(bin/vm2image export "dir:$(root_of "$n")" 2>/dev/null | gzip -6 | wc -c)
		total=$((total + sz)); echo "$n $total $sz" >> "$work/one-layer.tmp"
	done
	mv "$work/one-layer.tmp" "$work/one-layer"
	awk '$1=="vm" {print $5}' "$work/roots" | xargs python3 scripts/floor.py > "$work/floor"
) > "$work/offline.log" 2>&1 &
offline=$!

# The agents: one per VM, each with its token (the Job's token Secret: a file per VM name).
mkdir -p "$work/tokens"
for n in "${names[@]}"; do
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/tokens/$n"
	: > "$work/agent-$n.out"
	bin/vm2image-agent --root "$(root_of "$n")" --listen 127.0.0.1:0 --token-file "$work/tokens/$n" --quiet > "$work/agent-$n.out" 2>&1 &
	pids+=($!)
done
for n in "${names[@]}"; do
	for _ in $(seq 1 300); do [ "$(wc -l < "$work/agent-$n.out")" -ge 2 ] && break; sleep 0.1; done
	addr=$(sed -n 's/^vm2image-agent listening on //p' "$work/agent-$n.out")
	fp=$(sed -n 's/^vm2image-agent fingerprint //p' "$work/agent-$n.out")
	[ -n "$addr" ] && [ -n "$fp" ] || { echo "fleet: the agent of $n did not start:"; cat "$work/agent-$n.out"; exit 1; } >&2
	echo "$n $addr $fp" >> "$work/agents"
done

registry() { # registry NAME: starts a registry (not in a subshell: its pid must reach cleanup), sets REG
	local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	mkdir -p "$work/reg-$1"
	printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/reg-$1/data" "$port" > "$work/reg-$1/config.yml"
	docker-registry serve "$work/reg-$1/config.yml" > "$work/reg-$1/log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
	REG="127.0.0.1:$port"
}
blobdir() { echo "$work/reg-$1/data/docker/registry/v2/blobs"; }
blobs() { du -sb "$(blobdir "$1")" 2>/dev/null | cut -f1 || echo 0; }
blobset() { find "$(blobdir "$1")" -name data -type f 2>/dev/null | awk -F/ '{print "sha256:" $(NF-1)}' | sort; }

# Each release's base: its minbase root, imported into the engine and pushed to the registry.
for s in $(awk '$1=="base" {print $2}' "$work/roots"); do
	root=$(awk -v s="$s" '$1=="base" && $2==s {print $3}' "$work/roots")
	id=$(basename "$root")
	if [ "$(docker image inspect -f '{{index .Config.Labels "vm2image.fleetexp.root"}}' "vm2image-fleetexp/debian:$s" 2>/dev/null)" != "$id" ]; then
		tar -C "$root" --numeric-owner -cf - . | docker import --change "LABEL vm2image.fleetexp.root=$id" - "vm2image-fleetexp/debian:$s" >/dev/null
	fi
done

# fleet LABEL REGISTRY-NAME STRATEGY: the whole fleet by the workers, one pod per VM.
fleet() {
	local label=$1 regname=$2 strategy=$3 reg=${REGS[$2]}
	local inv="$work/inv-$label.yaml"
	# The cache repository (issue 14's registry cache) in the strategy's own registry: blobs
	# are stored once per registry, so its entries add only their small manifests and records.
	printf 'defaults:\n  cache_repo: %s/vm2image-cache\nvms:\n' "$reg" > "$inv"
	for n in "${names[@]}"; do
		read -r _ addr fp < <(grep "^$n " "$work/agents")
		printf '  - name: %s\n    source: %s\n    fingerprint: %s\n    base: registry://%s/base:%s\n' "$n" "$addr" "$fp" "$reg" "$(suite_of "$n")" >> "$inv"
		svc=$(awk -v n="$n" '$1=="vm" && $2==n {print $6}' "$work/roots" | sed 's/^-,\?//; s/,/, /g')
		[ -z "$svc" ] || printf '    services: [%s]\n' "$svc" >> "$inv"
	done
	bin/vm2image fleet k8s "$inv" --image "$tag" --push "$reg/fleet" --token-secret fleet-tokens \
		--parallelism "$workers" --worker-arg=--package-layers="$strategy" > "$work/k8s-$label.yaml"
	echo "start $(blobs "$regname") $(date +%s.%N)" > "$work/$label.events"
	mkdir -p "$work/res-$label"
	local w wp=() fail=0
	for ((w = 0; w < workers; w++)); do
		worker "$label" "$regname" "$w" &
		wp+=($!)
	done
	for w in "${wp[@]}"; do wait "$w" || fail=1; done
	[ $fail -eq 0 ] || { echo "fleet: a worker of $label failed (see above)" >&2; exit 1; }
}
# worker LABEL REGISTRY-NAME W: the pods of completion indexes W, W+workers, ... in turn.
worker() {
	local label=$1 regname=$2 w=$3 i
	mkdir -p "$work/cache-worker$w"
	for ((i = w; i < nvm; i += workers)); do
		local name=${names[$i]} pod="$work/pod-$label-$i"
		mkdir -p "$pod/inventory" "$pod/state"
		mapfile -t args < <("$work/fleet" pod "$work/k8s-$label.yaml" inventory="$pod/inventory" \
			cache="$work/cache-worker$w" state="$pod/state" tokens="$work/tokens")
		local t0; t0=$(date +%s.%N)
		if ! docker "${args[0]}" --name "fleetexp-$$-$label-$i" -e JOB_COMPLETION_INDEX="$i" "${args[@]:1}" > "$pod/log" 2>&1; then
			# Recorded, and the others go on (as the Job's other completions would).
			echo "fleet: $label: the pod of $name (index $i) failed:" >&2; tail -30 "$pod/log" >&2
			printf '%s\t%s\n' "$name" "$(grep -m1 -i 'error\|failed' "$pod/log" | cut -c1-300)" >> "$work/$label.failed"
			continue
		fi
		find "$pod/state" -name "$name.json" -o -name "$name.report.json" | xargs -r cp -t "$work/res-$label/"
		rm -rf "$pod/state"
		# The worker's node cache, kept between its pods, pruned as a node's janitor would.
		bin/vm2image cache prune --max-size "$cache_max" --cache-dir "$work/cache-worker$w" > /dev/null
		echo "$name $(blobs "$regname") $(date +%s.%N) $t0 $w" >> "$work/$label.events"
		log "$label: $name done by worker $w ($(tail -1 "$pod/log"))"
	done
}

declare -A REGS
log "the bases into the registries"
for r in single grained; do
	registry "$r"; REGS[$r]=$REG
	for s in $(awk '$1=="base" {print $2}' "$work/roots"); do
		from="docker-daemon:vm2image-fleetexp/debian:$s"
		[ "$r" = single ] || from="docker://${REGS[single]}/base:$s"
		skopeo copy --quiet --src-tls-verify=false --dest-tls-verify=false "$from" "docker://$REG/base:$s"
	done
done
# Every image of the grained run: its services answer, and verify finds it equal to its VM.
check() { # check CID CHECK-LINE: retried for up to 60 s while the services start
	local cid=$1 kind rest port path text cmd got=""
	read -r kind rest <<< "$2"
	for _ in $(seq 1 60); do
		case $kind in
		http)
			read -r port path text <<< "$rest"
			got=$(curl -fsS --max-time 3 "http://$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$cid"):$port$path" 2>&1 || true) ;;
		exec)
			text=${rest%% -- *} cmd=${rest#* -- }
			got=$(docker exec "$cid" sh -c "$cmd" 2>&1 || true) ;;
		*) echo "unknown check kind $kind"; return 1 ;;
		esac
		case $got in *"$text"*) echo "ok $(echo "$got" | head -1 | cut -c1-80)"; return 0 ;; esac
		sleep 1
	done
	echo "FAIL $(echo "$got" | tail -1 | cut -c1-120)"
	return 1
}
runvm() { # runvm NAME: its image started and checked, then verified; results in checks-NAME, verify-NAME
	local n=$1 ref local_ref cid c res v
	ref="${REGS[grained]}/fleet:$n"
	# skopeo, not docker pull: the engine here (20.10) hung for over 10 minutes, idle, after
	# downloading every blob of a 71-layer grained image; its docker-archive load works.
	local_ref="vm2image-fleetexp/run-$$:$n"
	if ! skopeo copy --quiet --src-tls-verify=false "docker://$ref" "docker-daemon:$local_ref" ||
		! cid=$(docker run -d --name "fleetexp-$$-run-$n" "$local_ref"); then
		printf '%s\t%s\t%s\n' "$n" "-" "FAIL: no image to run" >> "$work/checks-$n"
		printf '%s\t%s\n' "$n" "no image" >> "$work/verify-$n"
		return
	fi
	while IFS= read -r c; do
		res=$(check "$cid" "$c" || true)
		printf '%s\t%s\t%s\n' "$n" "$c" "$res" >> "$work/checks-$n"
	done < <("$work/fleet" checks "$suite" "$n")
	docker logs "$cid" > "$work/run-$n.log" 2>&1 || true
	docker rm -f "$cid" >/dev/null 2>&1 || true; docker rmi -f "$local_ref" >/dev/null 2>&1 || true
	v=$(bin/vm2image verify "registry://$ref" "dir:$(root_of "$n")" 2>&1 || true)
	printf '%s\t%s\n' "$n" "$(echo "$v" | grep -m1 -oE 'EQUAL|DIFFERENT[^.]*|error.*' || echo "$v" | tail -1)" >> "$work/verify-$n"
	echo "$v" > "$work/verify-$n.log"
	log "ran $n: $(grep -c "	ok" "$work/checks-$n") checks ok; verify: $(cut -f2 "$work/verify-$n")"
}
lane() { # lane L: runvm of the VMs L, L+2, ...
	local i
	for ((i = $1; i < nvm; i += 2)); do runvm "${names[$i]}"; done
}

log "single: ${#names[@]} VMs, $workers workers"
fleet single single single
log "grained"
fleet grained grained grained
blobset grained > "$work/blobs-before-warm"
# The images run meanwhile (two at a time): they only read the registry.
log "running and verifying the images; warm: grained again into the same registry"
lane 0 > "$work/lane0.log" 2>&1 &
lane0=$!
lane 1 > "$work/lane1.log" 2>&1 &
lane1=$!
fleet warm grained grained
blobset grained | comm -13 "$work/blobs-before-warm" - > "$work/warm-new-blobs"
wait "$lane0" "$lane1" || true
cat "$work/lane0.log" "$work/lane1.log" >&2
for n in "${names[@]}"; do cat "$work/checks-$n" 2>/dev/null; done > "$work/checks"
for n in "${names[@]}"; do cat "$work/verify-$n" 2>/dev/null; done > "$work/verify"

wait "$offline" || { echo "fleet: one-layer/floor failed:"; cat "$work/offline.log"; exit 1; } >&2
echo "load_end $(cut -d' ' -f1-3 /proc/loadavg)" >> "$work/meta"
mkdir -p "$out"
"$work/fleet" report "$suite" "$work" "$out"
cat "$out/results.md"
