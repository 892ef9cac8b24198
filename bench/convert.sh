#!/usr/bin/env bash
# Conversion benchmark (issues 5 and 13), all in one run, on a booted fixture VM (agent inside,
# loopback). VM=bench (default): Debian 12 minbase grown to a small server (mkroot's bench
# recipe, ~240 packages, ~900 MB); VM=web: the small WebVM fixture.
#
#   cold  vm2image convert -o     (a fresh cache root; the apt archive cache seeded, see APT_SEED)
#   warm  vm2image convert -o     (the cache root the first cold run filled)
#   warm  vm2image convert --load
#   (n)   the naive import: tar --one-file-system -C VMROOT -cf - . | docker import -
#   (b)   the whole VM as one layer over the wire: vm2image export ADDR | docker import -
#   (a)   the 2014 pipeline (as pkg/experiment's pipeline2014.go): full gzip tar of the VM over
#         the wire, unpacked, rsync -a --compare-dest=BASE+PACKAGES/, a dry-run rsync --delete
#         for deletions, tar of the result, docker build FROM base+packages + ADD (base+packages
#         is imported once beforehand, untimed: the baseline's benefit)
#
# Prints one table: medians of RUNS runs (COLD_RUNS cold ones), the ratios the issues set as
# goals, the load average at start and end, peak converter RSS. Env: RUNS (3), COLD_RUNS (1),
# VM (bench|web), APT_SEED (a directory of .deb files copied into each cold cache; default: a
# persistent one under /var/cache/vm2image-bench filled by the first cold run, so cold runs do
# not measure the mirror), PROFILE=1 (CPU profiles of a warm -o in the work dir, kept),
# BASELINE_BIN=DIR (another build's vm2image, e.g. main's, also timed warm, same cache, and
# cold, first, in a fresh cache of its own: "before").
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cold_runs=${COLD_RUNS:-1}
vm=${VM:-bench}
apt_seed=${APT_SEED:-/var/cache/vm2image-bench/apt-archives}
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
pins() { docker images --format '{{.Repository}}:{{.Tag}}' vm2image-cache/layers 2>/dev/null | sort; }
pins_before=$(pins)
[ -x bin/vm2image ] && [ -x bin/vm2image-init ] && [ -x bin/vm2image-agent ] || make build >/dev/null
work=$(mktemp -d /var/tmp/vm2image-bench-XXXX)
boot=""
cleanup() { [ -n "$boot" ] && kill $boot 2>/dev/null; wait 2>/dev/null || true; [ -n "${PROFILE:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/mkroot" ./internal/testenv/mkroot
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
base_root=$("$work/mkroot" base)
vm_root=$("$work/mkroot" "$vm")
docker image inspect debian:bookworm >/dev/null 2>&1 || tar -C "$base_root" --numeric-owner -cf - . | docker import - debian:bookworm >/dev/null
mkdir "$work/vm"
"$work/mkroot" boot "$work/vm" "$PWD/bin/vm2image-agent" "$work/token" 127.0.0.1:0 "$vm" > "$work/boot.out" 2> "$work/boot.log" &
boot=$!
for _ in $(seq 1 900); do [ -s "$work/boot.out" ] && break; sleep 0.2; done
read -r _ addr _ _ _ _ < "$work/boot.out"
[ -n "$addr" ] || { echo "bench: the VM did not boot:" >&2; cat "$work/boot.log" >&2; exit 1; }

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {print b - a}'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%.2fx", x/y}'; }
rss_max=0
# ours NAME CACHE ARGS...: one timed conversion; appends its time to t.NAME. The VM changes a
# little before each (one file), as a VM does between two conversions: the diff layer is new.
ours() {
	local name=$1 cache=$2; shift 2
	date +%s.%N > "$work/vm/srv/bench-stamp"
	rm -rf "$work/out.tar" "$work/out.tar.context"
	local t0 t1
	t0=$(now)
	/usr/bin/time -f '%M' -o "$work/rss" "${vm2image:-bin/vm2image}" convert "$addr" --token-file "$work/token" \
		--cache-dir "$cache" --work-dir "$work" --tag vm2image-bench/ours:latest --report "$work/report.json" \
		"$@" > /dev/null 2> "$work/ours.log" || { cat "$work/ours.log" >&2; exit 1; }
	t1=$(now)
	cp "$work/ours.log" "$work/ours.$name.log"
	elapsed "$t0" "$t1" >> "$work/t.$name"
	local rss; rss=$(cat "$work/rss"); [ "$rss" -gt "$rss_max" ] && rss_max=$rss
	cp "$work/report.json" "$work/report.$name.json"
}
phases() { # the report's phase times and install time, one line
	python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = ", ".join("%s %.1f" % (x["name"], x["seconds"]) for x in r["phases"])
print(p + (", install %.1f" % r["packages"]["install_seconds"] if r.get("packages") and r["packages"].get("install_seconds") else ""))
PY
}

# Cold: a fresh cache root each time, its apt archives seeded (the first run fills the seed).
# With BASELINE_BIN, each cold run of ours is followed by one of the baseline's (its cache
# removed after): ours first, on an agent that has hashed nothing yet (the baseline then finds
# the agent's digest memory warm: the comparison leans in the baseline's favour).
warm_cache=""
for i in $(seq 1 "$cold_runs"); do
	cache="$work/cache-$i"; mkdir -p "$cache/apt-archives"; chmod -R 700 "$cache"
	[ -d "$apt_seed" ] && cp -al "$apt_seed/." "$cache/apt-archives/" 2>/dev/null || true
	ours cold "$cache" -o "$work/out.tar" --no-context -v
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"].get("install_seconds", 0))' "$work/report.json" >> "$work/t.install"
	phases "$work/report.json" >> "$work/phases.cold"
	[ -z "$warm_cache" ] && warm_cache=$cache
	if [ ! -d "$apt_seed" ]; then mkdir -p "$apt_seed" && cp -al "$cache/apt-archives/." "$apt_seed/" 2>/dev/null || true; fi
	if [ -n "${BASELINE_BIN:-}" ] && [ -d "$apt_seed" ]; then
		bcache="$work/cache-before-$i"; mkdir -p "$bcache/apt-archives"; chmod -R 700 "$bcache"
		cp -al "$apt_seed/." "$bcache/apt-archives/" 2>/dev/null || true
		vm2image=$BASELINE_BIN/vm2image ours beforecold "$bcache" -o "$work/out.tar" --no-context -v
		python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"].get("install_seconds", 0))' "$work/report.json" >> "$work/t.beforeinstall"
		phases "$work/report.json" >> "$work/phases.beforecold"
		rm -rf "$bcache"
	fi
done

# Base+packages for baseline (a): the base root with the cached packages layer applied.
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["cache_key"])' "$work/report.json")
mkdir -p "$work/basepkg"
cp -a "$base_root/." "$work/basepkg/"
pkglayer=$warm_cache/layers/$key/layer.tar
if tar -tf "$pkglayer" | grep -q '\.wh\.'; then echo "bench: packages layer has whiteouts; baseline (a) would be wrong" >&2; exit 1; fi
tar -C "$work/basepkg" --numeric-owner --xattrs --xattrs-include='*' -xpf "$pkglayer"
tar -C "$work/basepkg" --numeric-owner -cf - . | docker import - vm2image-bench/basepkg:latest > /dev/null

thesis() {
	rm -rf "$work/t"; mkdir -p "$work/t/vm" "$work/t/out"
	bin/vm2image export "$addr" --token-file "$work/token" --wire-compression gzip --exclude '/tmp/*' -o - 2>/dev/null \
		| tar -C "$work/t/vm" --numeric-owner --xattrs --xattrs-include='*' -xpf -
	rsync -a --compare-dest="$work/basepkg/" "$work/t/vm/" "$work/t/out/"
	rsync -a --delete --dry-run --itemize-changes "$work/t/vm/" "$work/basepkg/" | grep -c '^\*deleting' > /dev/null || true
	tar -C "$work/t/out" -cf "$work/t/changes.tar" .
	printf 'FROM vm2image-bench/basepkg:latest\nADD changes.tar /\n' > "$work/t/Dockerfile"
	docker build -q -t vm2image-bench/thesis:latest "$work/t" > /dev/null
	rm -rf "$work/t"
}
naive() { tar --one-file-system -C "$work/vm" -cf - . 2>/dev/null | docker import - vm2image-bench/naive:latest > /dev/null; }
onelayer() { bin/vm2image export "$addr" --token-file "$work/token" -o - 2>/dev/null | docker import - vm2image-bench/onelayer:latest > /dev/null; }
timed() { local n=$1; shift; local t0 t1; t0=$(now); "$@"; t1=$(now); elapsed "$t0" "$t1" >> "$work/t.$n"; }

# Warm: one untimed --load first (the engine learns base+packages, as it would after any first
# conversion), then RUNS rounds, rotating the order.
ours warmup "$warm_cache" --load
for i in $(seq 1 "$runs"); do
	timed naive naive
	ours warmo "$warm_cache" -o "$work/out.tar" --no-context
	phases "$work/report.json" >> "$work/phases.warmo"
	ours warmload "$warm_cache" --load
	phases "$work/report.json" >> "$work/phases.warmload"
	timed onelayer onelayer
	timed thesis thesis
	if [ -n "${BASELINE_BIN:-}" ]; then
		vm2image=$BASELINE_BIN/vm2image ours beforeo "$warm_cache" -o "$work/out.tar" --no-context
		vm2image=$BASELINE_BIN/vm2image ours beforeload "$warm_cache" --load
	fi
done
if [ -n "${PROFILE:-}" ]; then
	VM2IMAGE_CPUPROFILE="$work/warm-o.pprof" bin/vm2image convert "$addr" --token-file "$work/token" --cache-dir "$warm_cache" \
		--work-dir "$work" -o "$work/out.tar" --no-context --force > /dev/null 2>&1 || true
	echo "profile: $work/warm-o.pprof (go tool pprof -top bin/vm2image $work/warm-o.pprof)"
fi

m() { median < "$work/t.$1"; }
cold=$(m cold); install=$(m install); wo=$(m warmo); wl=$(m warmload); n=$(m naive); b=$(m onelayer); a=$(m thesis)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
shape=$(python3 - "$work/report.warmo.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("%d entries, %.0f MB of files, %d packages, diff layer %.1f MB gz, %.1f MB over the wire" % (
    r["original_entries"], r["original_bytes"] / 1e6, r["packages"]["vm"],
    [l for l in r["image"]["layers"] if l["role"] == "vm-diff"][0]["compressed_bytes"] / 1e6, r["bytes_transferred"] / 1e6))
PY
)
echo "VM: $vm ($shape); runs: $runs warm, $cold_runs cold; load average at start $load_start, at end $load_end"
echo
echo "| what | median | ratio | goal |"
echo "|---|---|---|---|"
printf '| (n) naive: tar --one-file-system \\| docker import | %.2f s | 1.00x | |\n' "$n"
printf '| (b) vm2image export \\| docker import | %.2f s | %s of (n) | |\n' "$b" "$(ratio "$b" "$n")"
printf '| (a) 2014 pipeline | %.2f s | %s of (n) | |\n' "$a" "$(ratio "$a" "$n")"
printf '| warm vm2image convert --load | %.2f s | %s of (n), %s of (a) | <= 0.50x of (n) |\n' "$wl" "$(ratio "$wl" "$n")" "$(ratio "$wl" "$a")"
printf '| warm vm2image convert -o | %.2f s | %s of (n) | <= 0.50x of (n) |\n' "$wo" "$(ratio "$wo" "$n")"
printf '| cold vm2image convert -o | %.2f s | %s of its install (%.2f s) | <= 1.10x |\n' "$cold" "$(ratio "$cold" "$install")" "$install"
if [ -n "${BASELINE_BIN:-}" ]; then
	printf '| before: warm convert --load (%s) | %.2f s | %s of (n) | |\n' "$BASELINE_BIN" "$(m beforeload)" "$(ratio "$(m beforeload)" "$n")"
	printf '| before: warm convert -o (%s) | %.2f s | %s of (n) | |\n' "$BASELINE_BIN" "$(m beforeo)" "$(ratio "$(m beforeo)" "$n")"
	[ -s "$work/t.beforecold" ] && printf '| before: cold convert -o (%s) | %.2f s | %s of its install (%.2f s) | |\n' "$BASELINE_BIN" \
		"$(m beforecold)" "$(ratio "$(m beforecold)" "$(m beforeinstall)")" "$(m beforeinstall)"
fi
printf '| peak converter RSS | %d MiB | | <= 512 MiB |\n' $(( rss_max / 1024 ))
echo
echo "phases (s), last run of each: cold: $(tail -1 "$work/phases.cold"); warm -o: $(tail -1 "$work/phases.warmo"); warm --load: $(tail -1 "$work/phases.warmload")"
[ -s "$work/phases.beforecold" ] && echo "phases (s) of the baseline's cold run: $(tail -1 "$work/phases.beforecold")"
grep -h "base+packages tree\|VM hashed ahead" "$work"/ours.cold.log 2>/dev/null || true
# The pin tags --load set for this run's VM (vm2image-cache/layers:HASH), not others'.
comm -13 <(echo "$pins_before") <(pins) | xargs -r docker rmi > /dev/null 2>&1 || true
docker rmi -f vm2image-bench/ours:latest vm2image-bench/thesis:latest vm2image-bench/onelayer:latest vm2image-bench/naive:latest \
	vm2image-bench/basepkg:latest > /dev/null 2>&1 || true
