#!/usr/bin/env bash
# Conversion benchmark on the fixture VM (booted, agent inside), all in one run:
#   ours:  vm2image convert ADDR --load  (warm packages cache: one conversion first, untimed)
#   (a) the 2014 pipeline: full gzip-compressed tar of the VM over the wire, unpacked,
#       rsync -a --compare-dest=BASE+PACKAGES/ VM/ OUT/, tar of OUT, docker build FROM base+packages
#       (the base+packages image is imported once beforehand, untimed: the baseline's benefit)
#   (b) the whole VM as one layer: vm2image export ADDR | docker import
# Prints medians of RUNS runs, ratios, bytes over the wire against the compressed diff layer,
# peak temporary disk of ours (sampled) and converter RSS.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
[ -x bin/vm2image ] && [ -x bin/vm2image-init ] || make build >/dev/null
work=$(mktemp -d /var/tmp/vm2image-bench-XXXX)
boot=""
cleanup() { [ -n "$boot" ] && kill $boot 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/mkroot" ./internal/testenv/mkroot
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
base_root=$("$work/mkroot" base)
docker image inspect debian:bookworm >/dev/null 2>&1 || tar -C "$base_root" --numeric-owner -cf - . | docker import - debian:bookworm >/dev/null
mkdir "$work/vm"
"$work/mkroot" boot "$work/vm" "$PWD/bin/vm2image-agent" "$work/token" 127.0.0.1:0 > "$work/boot.out" 2> "$work/boot.log" &
boot=$!
for _ in $(seq 1 900); do [ -s "$work/boot.out" ] && break; sleep 0.2; done
read -r _ addr _ _ _ _ < "$work/boot.out"

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {print b - a}'; }

ours() {
	mkdir -p "$work/ours"
	touch "$work/ours.running"; echo 0 > "$work/ours.peak"
	( peak=$(cat "$work/ours.peak"); while [ -e "$work/ours.running" ]; do
		s=$(du -sb "$work/ours" 2>/dev/null | cut -f1); [ "${s:-0}" -gt "$peak" ] && peak=$s && echo "$peak" > "$work/ours.peak"; sleep 0.1
	done ) &
	/usr/bin/time -f '%M' -o "$work/ours.rss" bin/vm2image convert "$addr" --token-file "$work/token" --load \
		--tag vm2image-bench/ours:latest --work-dir "$work/ours" --report "$work/report.json" > /dev/null 2> "$work/ours.log"
	rm -f "$work/ours.running"; wait $!
}
# Warm the packages cache and get base+packages for baseline (a).
ours
python3 - "$work/report.json" > "$work/figures" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
diff = [l for l in r["image"]["layers"] if l["role"] == "vm-diff"][0]
print(r["bytes_transferred"], diff["compressed_bytes"], r["original_bytes"], r["packages"]["cache_key"])
PY
read -r wire diffgz orig key < "$work/figures"
mkdir -p "$work/basepkg"
# base+packages root: the cached base root with the cached packages layer applied by GNU tar
# (no whiteouts are expected in a packages layer; checked below).
cp -a "$base_root/." "$work/basepkg/"
pkglayer=/var/cache/vm2image/layers/$key/layer.tar
if tar -tf "$pkglayer" | grep -q '\.wh\.'; then echo "bench: packages layer has whiteouts; baseline (a) would be wrong" >&2; exit 1; fi
tar -C "$work/basepkg" --numeric-owner --xattrs --xattrs-include='*' -xpf "$pkglayer"
tar -C "$work/basepkg" --numeric-owner -cf - . | docker import - vm2image-bench/basepkg:latest > /dev/null

thesis() {
	rm -rf "$work/t"; mkdir -p "$work/t/vm" "$work/t/out"
	bin/vm2image export "$addr" --token-file "$work/token" --wire-compression gzip --exclude '/tmp/*' -o - 2>/dev/null \
		| tar -C "$work/t/vm" --numeric-owner --xattrs --xattrs-include='*' -xpf -
	rsync -a --compare-dest="$work/basepkg/" "$work/t/vm/" "$work/t/out/"
	tar -C "$work/t/out" -cf "$work/t/changes.tar" .
	printf 'FROM vm2image-bench/basepkg:latest\nADD changes.tar /\n' > "$work/t/Dockerfile"
	docker build -q -t vm2image-bench/thesis:latest "$work/t" > /dev/null
}
onelayer() { bin/vm2image export "$addr" --token-file "$work/token" -o - 2>/dev/null | docker import - vm2image-bench/onelayer:latest > /dev/null; }

: > "$work/t.ours"; : > "$work/t.thesis"; : > "$work/t.one"
for _ in $(seq 1 "$runs"); do
	t0=$(now); ours; t1=$(now); elapsed "$t0" "$t1" >> "$work/t.ours"
	t0=$(now); thesis; t1=$(now); elapsed "$t0" "$t1" >> "$work/t.thesis"
	t0=$(now); onelayer; t1=$(now); elapsed "$t0" "$t1" >> "$work/t.one"
done
o=$(median < "$work/t.ours"); a=$(median < "$work/t.thesis"); b=$(median < "$work/t.one")
basepkg_bytes=$(du -sb "$work/basepkg" | cut -f1)
echo "| runs | vm2image convert --load (warm cache) | (a) 2014 pipeline | ours/(a) | (b) one layer | ours/(b) | bytes over the wire | compressed diff layer | wire/diff | peak temp disk (ours) | base+packages root | converter RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '| %d | %.2f s | %.2f s | %.2fx | %.2f s | %.2fx | %d | %d | %.2fx | %d | %d | %d MiB |\n' "$runs" "$o" "$a" \
	"$(awk -v x="$o" -v y="$a" 'BEGIN{print x/y}')" "$b" "$(awk -v x="$o" -v y="$b" 'BEGIN{print x/y}')" \
	"$wire" "$diffgz" "$(awk -v x="$wire" -v y="$diffgz" 'BEGIN{print x/y}')" "$(cat "$work/ours.peak")" "$basepkg_bytes" \
	$(( $(cat "$work/ours.rss") / 1024 ))
docker rmi -f vm2image-bench/ours:latest vm2image-bench/thesis:latest vm2image-bench/onelayer:latest vm2image-bench/basepkg:latest > /dev/null 2>&1 || true
