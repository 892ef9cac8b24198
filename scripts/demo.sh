#!/usr/bin/env bash
# The demo: make a small Debian VM (debootstrap bookworm, nginx serving a page, a service of its
# own under a non-root user) running in its own namespaces with the agent inside, convert it
# through the agent, load and run the image, and show both services answering from the container.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it builds VM roots with debootstrap and mounts in them)" >&2; exit 1; }

work=${VM2IMAGE_DEMO_DIR:-/var/tmp/vm2image-demo}
rm -rf "$work/vm"
mkdir -p "$work/vm"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/token"
. scripts/lib/fixture.sh
fixture_mkroot "$work"
fixture_base_image "$work"

echo "demo: booting the demo VM (debootstrap bookworm + nginx + an app service; cached after the first run)"
cid=""
cleanup() {
	[ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1
	fixture_stop
}
trap cleanup EXIT
fixture_boot "$work" "$work/vm" "$PWD/bin/vm2image-agent" "$work/token" 127.0.0.1:0
read -r _ addr _ nginx_port _ app_port _ fingerprint <<< "$FIXTURE_LINE"
echo "demo: VM up: agent on $addr, nginx on port $nginx_port, app service on 127.0.0.1:$app_port"
echo
echo "\$ vm2image inspect $addr --token-file $work/token --fingerprint $fingerprint"
bin/vm2image inspect "$addr" --token-file "$work/token" --fingerprint "$fingerprint"
echo
echo "\$ vm2image convert $addr --token-file $work/token --fingerprint $fingerprint -o $work/vm.tar --tag vm2image-demo/web:latest --report $work/report.json --force"
bin/vm2image convert "$addr" --token-file "$work/token" --fingerprint "$fingerprint" -o "$work/vm.tar" --tag vm2image-demo/web:latest --report "$work/report.json" --force
echo
docker load -i "$work/vm.tar"
cid=$(docker run -d vm2image-demo/web:latest)
ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$cid")
sleep 1
vm_nginx=$(curl -fsS "http://127.0.0.1:$nginx_port/")
ct_nginx=$(curl -fsS --retry 10 --retry-connrefused --retry-delay 1 "http://$ip:$nginx_port/")
vm_app=$(curl -fsS "http://127.0.0.1:$app_port/")
ct_app=$(docker exec "$cid" busybox wget -qO- "http://127.0.0.1:$app_port/")
echo "demo: nginx  in the VM:        $vm_nginx"
echo "demo: nginx  in the container: $ct_nginx"
echo "demo: app    in the VM:        $vm_app"
echo "demo: app    in the container: $ct_app"
docker logs "$cid" 2>&1 | sed 's/^/demo: container: /'
if [ "$vm_nginx" != "$ct_nginx" ] || [ "$vm_app" != "$ct_app" ]; then
	echo "demo: FAILED: the container's services do not answer like the VM's" >&2
	exit 1
fi
echo
echo "demo: both services answer from the container with the VM's bytes."
echo "demo: image $work/vm.tar, run configuration in $work/vm.tar.context/ (Dockerfile, services.yaml, compose.yaml), report $work/report.json"
