#!/usr/bin/env bash
# The demo: make a small Debian VM (debootstrap bookworm, nginx serving a page, a service of its
# own under a non-root user), start the agent inside it, and read it through the agent.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it builds a VM root with debootstrap and mounts in it)" >&2; exit 1; }

work=${VM2IMAGE_DEMO_DIR:-/var/tmp/vm2image-demo}
mkdir -p "$work/vm"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
echo "demo: building the demo VM root (cached after the first run)"
go build -o "$work/mkroot" ./internal/testenv/mkroot
"$work/mkroot" boot "$work/vm" "$PWD/bin/vm2image-agent" "$work/token" 127.0.0.1:0 > "$work/boot.out" 2> "$work/boot.log" &
boot=$!
trap 'kill $boot 2>/dev/null; wait $boot 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
	[ -s "$work/boot.out" ] && break
	kill -0 $boot 2>/dev/null || { cat "$work/boot.log" >&2; exit 1; }
	sleep 0.2
done
read -r _ addr _ nginx_port _ app_port < "$work/boot.out"
echo "demo: VM up: agent on $addr, nginx on port $nginx_port, app service on port $app_port"
echo "demo: nginx in the VM answers: $(curl -s "http://127.0.0.1:$nginx_port/")"
echo
echo "\$ vm2image inspect $addr --token-file $work/token"
bin/vm2image inspect "$addr" --token-file "$work/token"
echo
echo "\$ vm2image export $addr --token-file $work/token -o $work/vm.tar"
bin/vm2image export "$addr" --token-file "$work/token" -o "$work/vm.tar"
ls -l "$work/vm.tar"
