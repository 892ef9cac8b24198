#!/usr/bin/env bash
# Diff benchmark: `vm2image diff -o` against the 2014 pipeline on the same pair of trees, in the
# same run, alternating: rsync -a --compare-dest=OLD/ NEW/ OUT/, a reverse rsync run that lists
# deletions, then tar -C OUT -cf layer.tar . Prints a Markdown table of medians over RUNS runs,
# the speed ratio and the layer sizes, and peak RSS.
#   bench/diff.sh [OLD NEW]   (default: the cached bookworm minbase root and the WebVM fixture)
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
old=${1:-$(go run ./internal/testenv/mkroot base)}
new=${2:-$(go run ./internal/testenv/mkroot web)}
[ -x bin/vm2image ] || make build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {print b - a}'; }

thesis() {
	rm -rf "$work/out" "$work/thesis.tar"
	rsync -a --compare-dest="$old/" "$new/" "$work/out/"
	rsync -a --delete --dry-run --itemize-changes "$new/" "$old/" | grep '^\*deleting' > "$work/deleted.txt" || true
	tar -C "$work/out" -cf "$work/thesis.tar" .
}
ours() { # strategy
	/usr/bin/time -f '%M' -o "$work/rss.$1" bin/vm2image diff "dir:$old" "dir:$new" --strategy "$1" -q -o "$work/$1.tar" > /dev/null
}

: > "$work/t.thesis"; : > "$work/t.rsync"; : > "$work/t.checksum"
thesis; ours rsync; ours checksum # warm the page cache
for _ in $(seq 1 "$runs"); do
	t0=$(now); thesis; t1=$(now); elapsed "$t0" "$t1" >> "$work/t.thesis"
	for s in rsync checksum; do
		t0=$(now); ours $s; t1=$(now); elapsed "$t0" "$t1" >> "$work/t.$s"
	done
done
th=$(median < "$work/t.thesis"); rs=$(median < "$work/t.rsync"); cs=$(median < "$work/t.checksum")
size() { stat -c %s "$1"; }
echo "| pair | runs | 2014 pipeline | vm2image diff --strategy rsync -o | speed-up | vm2image diff --strategy checksum -o | speed-up | layer: 2014 tar | rsync layer | checksum layer (vs 2014) | peak RSS rsync / checksum |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '| %s -> %s | %d | %.3f s | %.3f s | %.1fx | %.3f s | %.1fx | %d | %d | %d (%+.1f%%) | %d / %d MiB |\n' \
	"$(basename "$old")" "$(basename "$new")" "$runs" "$th" "$rs" "$(awk -v a="$th" -v b="$rs" 'BEGIN{print a/b}')" \
	"$cs" "$(awk -v a="$th" -v b="$cs" 'BEGIN{print a/b}')" "$(size "$work/thesis.tar")" "$(size "$work/rsync.tar")" \
	"$(size "$work/checksum.tar")" "$(awk -v a="$(size "$work/thesis.tar")" -v b="$(size "$work/checksum.tar")" 'BEGIN{print (b-a)*100/a}')" \
	$(( $(cat "$work/rss.rsync") / 1024 )) $(( $(cat "$work/rss.checksum") / 1024 ))
