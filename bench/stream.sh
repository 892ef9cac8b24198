#!/usr/bin/env bash
# Streaming benchmark (issue: agent -> converter over loopback), compared in the same run with
# `tar -C ROOT -cf - . | zstd -1 > /dev/null` on the same tree, and over TLS (the default) against
# the same agent binary in --insecure-plaintext. Prints Markdown tables: medians of RUNS runs,
# throughput ratios, peak RSS of the agent and of the receiver; then the handshake time (TLS 1.3
# with channel-bound proofs vs plaintext proofs), the median of HANDSHAKE_SAMPLES samples of
# `go test -bench BenchmarkHandshake` (each a mean over hundreds of handshakes).
#   bench/stream.sh [ROOT]     (default: the cached WebVM fixture root)
#   WIRE=none bench/stream.sh  (no wire compression: the channel's own cost shows most)
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
wire=${WIRE:-zstd}
samples=${HANDSHAKE_SAMPLES:-15}
root=${1:-$(go run ./internal/testenv/mkroot)}
[ -x bin/vm2image ] && [ -x bin/vm2image-agent ] || make build >/dev/null
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 32 /dev/urandom | base64 > "$work/token"

bytes=$(tar -C "$root" -cf - . 2>/dev/null | wc -c)
entries=$(find "$root" -xdev | wc -l)

# start_agent NAME [FLAGS...]: an agent on a free port; its address in $work/NAME.addr.
start_agent() {
	local name=$1
	shift
	bin/vm2image-agent --listen 127.0.0.1:0 --root "$root" --token-file "$work/token" --quiet "$@" > "$work/$name.out" &
	pids+=($!)
	echo $! > "$work/$name.pid"
	for _ in $(seq 1 100); do [ -s "$work/$name.out" ] && break; sleep 0.05; done
	head -n1 "$work/$name.out" | sed 's/^vm2image-agent listening on //' > "$work/$name.addr"
}
start_agent tls
start_agent plain --insecure-plaintext
fingerprint=$(sed -n 's/^vm2image-agent fingerprint //p' "$work/tls.out")

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: > "$work/tar.times"; : > "$work/tls.times"; : > "$work/plain.times"; : > "$work/recv.rss"
sync; cat "$root/etc/os-release" > /dev/null 2>&1 || true
for i in $(seq 1 "$runs"); do
	# Rotate the order so that no side always runs with a warmer page cache.
	order=(tar tls plain)
	[ $((i % 3)) = 1 ] && order=(tls plain tar)
	[ $((i % 3)) = 2 ] && order=(plain tar tls)
	for which in "${order[@]}"; do
		t0=$(now)
		case $which in
		tar) tar -C "$root" -cf - . 2>/dev/null | zstd -1 -q > /dev/null ;;
		tls)
			/usr/bin/time -f '%M' -o "$work/rss" bin/vm2image export "$(cat "$work/tls.addr")" --token-file "$work/token" \
				--fingerprint "$fingerprint" --wire-compression "$wire" -o - 2>/dev/null > /dev/null
			cat "$work/rss" >> "$work/recv.rss" ;;
		plain)
			bin/vm2image export "$(cat "$work/plain.addr")" --token-file "$work/token" --insecure-plaintext \
				--wire-compression "$wire" -o - 2>/dev/null > /dev/null ;;
		esac
		t1=$(now)
		awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}' >> "$work/$which.times"
	done
done
agent_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$work/tls.pid")/status")
tar_s=$(median < "$work/tar.times"); tls_s=$(median < "$work/tls.times"); plain_s=$(median < "$work/plain.times")
recv_kb=$(sort -n "$work/recv.rss" | tail -n1)
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN {printf "%.1f", b / s / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "| tree | entries | tar bytes | runs | wire | tar \| zstd -1 | export over TLS | export in plaintext | TLS / plaintext (throughput) | tar / TLS (throughput) | agent peak RSS | receiver peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '| %s | %d | %d | %d | %s | %.2f s (%s MB/s) | %.2f s (%s MB/s) | %.2f s (%s MB/s) | %sx | %sx | %d MiB | %d MiB |\n' \
	"$(basename "$root")" "$entries" "$bytes" "$runs" "$wire" "$tar_s" "$(mbps "$tar_s")" "$tls_s" "$(mbps "$tls_s")" \
	"$plain_s" "$(mbps "$plain_s")" "$(ratio "$plain_s" "$tls_s")" "$(ratio "$tar_s" "$tls_s")" \
	$((agent_rss_kb / 1024)) $((recv_kb / 1024))

go test -run '^$' -bench '^BenchmarkHandshake$' -count "$samples" ./pkg/proto > "$work/hs.txt"
hs() { awk -v n="BenchmarkHandshake/$1-" 'index($1, n) == 1 {print $3 / 1e6}' "$work/hs.txt" | median; }
echo
echo "| handshake over loopback (median of $samples samples) | TLS 1.3 + channel-bound proofs | plaintext proofs |"
echo "|---|---|---|"
printf '| connect and authenticate | %.2f ms | %.2f ms |\n' "$(hs tls)" "$(hs plaintext)"
