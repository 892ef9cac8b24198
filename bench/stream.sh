#!/usr/bin/env bash
# Streaming benchmark (issue: agent -> converter over loopback), compared in the same run with
# `tar -C ROOT -cf - . | zstd -1 > /dev/null` on the same tree. Prints a Markdown table with
# medians of RUNS runs, the throughput ratio, and peak RSS of the agent and of the receiver.
#   bench/stream.sh [ROOT]     (default: the cached WebVM fixture root)
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
root=${1:-$(go run ./internal/testenv/mkroot)}
[ -x bin/vm2image ] && [ -x bin/vm2image-agent ] || make build >/dev/null
work=$(mktemp -d)
trap 'kill $agent_pid 2>/dev/null || true; rm -rf "$work"' EXIT
echo "bench-token-$$" > "$work/token"

bytes=$(tar -C "$root" -cf - . 2>/dev/null | wc -c)
entries=$(find "$root" -xdev | wc -l)

bin/vm2image-agent --listen 127.0.0.1:0 --root "$root" --token-file "$work/token" --quiet > "$work/agent.out" &
agent_pid=$!
for _ in $(seq 1 100); do [ -s "$work/agent.out" ] && break; sleep 0.05; done
addr=$(head -n1 "$work/agent.out" | sed 's/^vm2image-agent listening on //')

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: > "$work/tar.times"; : > "$work/agent.times"; : > "$work/recv.rss"
sync; cat "$root/etc/os-release" > /dev/null
for i in $(seq 1 "$runs"); do
	# Alternate the order so neither side always runs with a warmer page cache.
	for which in tar agent; do
		t0=$(now)
		if [ $which = tar ]; then
			tar -C "$root" -cf - . 2>/dev/null | zstd -1 -q > /dev/null
		else
			/usr/bin/time -f '%M' -o "$work/rss" bin/vm2image export "$addr" --token-file "$work/token" -o - 2>/dev/null > /dev/null
			cat "$work/rss" >> "$work/recv.rss"
		fi
		t1=$(now)
		awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$work/$which.times"
	done
done
agent_rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$agent_pid/status)
tar_s=$(median < "$work/tar.times"); agent_s=$(median < "$work/agent.times")
recv_kb=$(sort -n "$work/recv.rss" | tail -n1)
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN {printf "%.1f", b / s / 1e6}'; }
echo "| tree | entries | tar bytes | runs | tar \| zstd -1 | vm2image export (agent -> converter, zstd) | ratio (throughput) | agent peak RSS | receiver peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '| %s | %d | %d | %d | %.2f s (%s MB/s) | %.2f s (%s MB/s) | %.2fx | %d MiB | %d MiB |\n' \
	"$(basename "$root")" "$entries" "$bytes" "$runs" "$tar_s" "$(mbps "$tar_s")" "$agent_s" "$(mbps "$agent_s")" \
	"$(awk -v a="$tar_s" -v b="$agent_s" 'BEGIN {print a / b}')" $((agent_rss_kb / 1024)) $((recv_kb / 1024))
