#!/usr/bin/env bash
# The first hour of a new operator, played through the real binaries (bin/ from `make build`) on
# the WebVM fixture VM, FOLLOWING THE README: every fenced block of README.md marked
# `<!-- walkthrough -->` is run, line by line, as written, with the README's own variables (VM,
# FP). The script fails when any of those commands stops working, when the image they make does
# not serve the VM's page, or when a usual mistake does not get the message it must.
#
# The fixture VM is a debootstrap bookworm root in its own pid and mount namespaces (nginx, a
# busybox httpd as user app; no agent: the README starts it). It shares the converter's network.
# `ssh $VM CMD` and `scp FILES $VM:DIR` are stand-ins defined below: ssh runs CMD with sh in the
# VM's namespaces and root (nsenter), from /root, as a login would; scp copies into the VM's root.
# `ssh -f -N -M -S SOCK -L P:127.0.0.1:P $VM` (the tunnel) is the identity here, since the VM's
# loopback is the converter's: the stand-in checks the forward has that form and records the
# control socket that `ssh -S SOCK -O exit $VM` closes. Port 49153 of 127.0.0.1 must be free.
#
# Item 1 of issue 18 (services from enabled units) is not relied on: the fixture's services run.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
say() { echo "walkthrough: $*"; }
fail() { echo "walkthrough: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (the converter needs root; the fixture VM mounts in namespaces)"
for b in vm2image vm2image-agent vm2image-init; do
	[ -x "bin/$b" ] || fail "bin/$b is missing: run make build"
done
for c in docker nsenter script curl ss flock; do
	command -v "$c" >/dev/null || fail "$c is missing: run scripts/setup.sh"
done
started=$(date +%s.%N)

work=${VM2IMAGE_WALKTHROUGH_DIR:-/var/tmp/vm2image-walkthrough}
mkdir -p "$work"
exec 9> "$work.lock"
flock -n 9 || fail "another walkthrough is running ($work.lock)"
rm -rf "$work/vm" "$work/cwd"
mkdir -p "$work/vm" "$work/cwd"
if [ -n "$(ss -ltnH 'sport = :49153')" ]; then
	fail "port 49153 is taken (the README's agent listens there): $(ss -ltnpH 'sport = :49153')"
fi

. scripts/lib/fixture.sh
fixture_mkroot "$work"
fixture_base_image "$work"

bg=""
bg_container=""
cleanup() {
	local rc=$?
	[ -n "$bg" ] && kill "$bg" 2>/dev/null
	[ -n "$bg_container" ] && docker rm -f "$bg_container" >/dev/null 2>&1
	docker rm -f myvm >/dev/null 2>&1 || true
	docker rmi myvm:latest myvm:rebuilt >/dev/null 2>&1 || true
	rm -f /tmp/vm2image-tunnel
	[ $rc -eq 0 ] || [ -z "${log:-}" ] || { say "the agent's log:"; cat "$log" 2>/dev/null || true; }
	fixture_stop
}
trap cleanup EXIT

say "booting the fixture VM (no agent yet)"
fixture_boot "$work" "$work/vm" - - -
read -r _ vmpid _ nginx_port _ app_port <<< "$FIXTURE_LINE"
[ "$vmpid" -gt 1 ] 2>/dev/null || fail "no VM pid in $FIXTURE_LINE"
# The VM's root as its own processes see it (its /run is a tmpfs of its mount namespace).
VMROOT=/proc/$vmpid/root
say "VM up: pid $vmpid, nginx on port $nginx_port, app on 127.0.0.1:$app_port"

# ssh stand-in: see the header.
ssh() {
	local sock="" fwd="" ctl=""
	while [ $# -gt 0 ]; do
		case $1 in
		-f | -N | -M) ;;
		-S) sock=$2; shift ;;
		-L) fwd=$2; shift ;;
		-O) ctl=$2; shift ;;
		-*) echo "ssh stand-in: option $1 is not emulated" >&2; return 255 ;;
		*) break ;;
		esac
		shift
	done
	[ "${1:-}" = "$VM" ] || { echo "ssh stand-in: destination '${1:-}' is not \$VM ($VM)" >&2; return 255; }
	shift
	if [ -n "$ctl" ]; then
		[ "$ctl" = exit ] && [ -e "$sock" ] || { echo "ssh stand-in: no master on $sock" >&2; return 255; }
		rm -f "$sock"
		return 0
	fi
	if [ -n "$fwd" ]; then
		local lport rhost rport
		IFS=: read -r lport rhost rport <<< "$fwd"
		if [ "$rhost" != 127.0.0.1 ] || [ "$lport" != "$rport" ]; then
			echo "ssh stand-in: only -L P:127.0.0.1:P is the identity here, not $fwd" >&2
			return 255
		fi
		[ -z "$sock" ] || : > "$sock"
		return 0
	fi
	nsenter -t "$vmpid" -m -p -r -w env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C /bin/sh -c "cd && $*"
}

# scp stand-in: FILES... $VM:PATH, PATH relative to /root as scp's is.
scp() {
	local dest=${!#} path
	case $dest in "$VM":*) ;; *) echo "scp stand-in: destination $dest is not \$VM:PATH" >&2; return 1 ;; esac
	path=${dest#"$VM":}
	case $path in /*) ;; *) path=/root/$path ;; esac
	cp -- "${@:1:$#-1}" "$VMROOT$path"
}

# The README's walkthrough blocks: block N's lines, comments and blank lines left out.
readme_block() {
	awk -v want="$1" '
		/^<!-- walkthrough -->$/ { marked = 1; next }
		marked && /^```/ { if (inblock) { inblock = 0; marked = 0; n++ } else { inblock = 1; n++ } ; next }
		inblock && n == 2 * want - 1 && !/^[ \t]*(#|$)/ { print }
	' "$repo/README.md"
}
nblocks=$(grep -c '^<!-- walkthrough -->$' README.md)
[ "$nblocks" -eq 4 ] || fail "README.md has $nblocks walkthrough blocks, the walkthrough plays 4 (token, agent, convert, removal)"

# run_block N: runs the README's block N line by line in this shell, so its variables carry on.
run_block() {
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		echo "\$ $line"
		eval "$line" < /dev/null || fail "README walkthrough block $1, command $n failed: $line"
	done < <(readme_block "$1")
	[ "$n" -gt 0 ] || fail "README walkthrough block $1 is empty"
}

# expect CODE TEXT CMD...: CMD exits CODE and prints TEXT on stderr, in one line.
expect() {
	local code=$1 want=$2 rc=0 err
	shift 2
	err=$("$@" 2>&1 > /dev/null) || rc=$?
	if [ "$rc" -ne "$code" ] || [[ $err != *"$want"* ]]; then
		fail "$* exited $rc with '$err'; want exit $code and '$want'"
	fi
	[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "$*: the error takes more than one line: $err"
	say "ok: $* -> exit $rc: $err"
}

export PATH=$repo/bin:$PATH
cd "$work/cwd"
ln -s "$repo/bin" bin

say "1. token and agent to the VM (README block 1)"
run_block 1
agentdir=$VMROOT/run/vm2image
[ "$(stat -c %a "$agentdir/token")" = 600 ] || fail "the token reached the VM with mode $(stat -c %a "$agentdir/token")"
say "2. agent started to outlive the session, fingerprint, tunnel (README block 2)"
run_block 2
[[ ${FP:-} == SHA256:* ]] || fail "FP is '${FP:-}', not the agent's fingerprint"
log=$agentdir/agent.log
head -n 1 "$log" | grep -qx 'vm2image-agent listening on 127.0.0.1:49153' || fail "agent log: $(head -n 3 "$log")"
[ -e /tmp/vm2image-tunnel ] || fail "the tunnel's control socket was not made"

say "3. inspect, convert, run, verify, rebuild (README block 3)"
t0=$(date +%s.%N)
run_block 3
t1=$(date +%s.%N)
ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' myvm)
vm_page=$(curl -fsS "http://127.0.0.1:$nginx_port/")
ct_page=$(curl -fsS --retry 10 --retry-connrefused --retry-delay 1 "http://$ip:$nginx_port/") || fail "nginx does not answer in the container: $(docker logs myvm 2>&1 | tail -5)"
[ "$vm_page" = "$ct_page" ] || fail "the container's nginx answers '$ct_page', the VM's '$vm_page'"
say "nginx answers from the container with the VM's page: $ct_page"
# The image docker build made from vm.tar.context serves the same page.
rebuilt=$(docker run -d myvm:rebuilt)
bg_container=$rebuilt
rip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' "$rebuilt")
rb_page=$(curl -fsS --retry 10 --retry-connrefused --retry-delay 1 "http://$rip:$nginx_port/") || fail "nginx does not answer in the rebuilt image: $(docker logs "$rebuilt" 2>&1 | tail -5)"
[ "$rb_page" = "$vm_page" ] || fail "the rebuilt image's nginx answers '$rb_page', the VM's '$vm_page'"
docker rm -f "$rebuilt" >/dev/null
bg_container=""
say "nginx answers from the image rebuilt with docker build from vm.tar.context too"
grep -Eq 'proto: 127\.0\.0\.1:[0-9]+: accepted connection$' "$log" || fail "the agent logged no accepted connection with the peer's address"
if grep -Eq 'trusted\.gpg|preferences|warning: token file' "$log"; then
	fail "the agent logged missing optional files or a token warning: $(grep -E 'trusted\.gpg|preferences|warning' "$log")"
fi

say "4. the usual mistakes, each with the message it must print"
head -c 32 /dev/urandom | base64 > wrong-token
chmod 600 wrong-token
printf 'secret\n' > weak-token
expect 1 "authentication failed: wrong token" vm2image inspect 127.0.0.1 --token-file wrong-token --fingerprint "$FP"
grep -Eq 'proto: 127\.0\.0\.1:[0-9]+: refusing connection: .*token' "$log" || fail "the agent did not log the refused connection"
expect 1 "head -c 32 /dev/urandom" vm2image inspect 127.0.0.1 --token-file weak-token
expect 1 "missing does not exist" vm2image convert 127.0.0.1 --token-file token -o missing/vm.tar
expect 2 'unknown --strategy "bogus"' vm2image convert 127.0.0.1 --token-file token -o other.tar --strategy bogus
expect 1 "give --force" vm2image convert 127.0.0.1 --token-file token -o vm.tar
expect 2 "/nonexistent/vm.tar does not exist" vm2image verify /nonexistent/vm.tar 127.0.0.1 --token-file token
# export with stdout on a terminal (script gives it one; its stderr lands on the same terminal).
rc=0
out=$(script -qec "vm2image export 127.0.0.1 --token-file token --fingerprint $FP" /dev/null | tr -d '\r') || rc=$?
[ "$rc" -eq 2 ] && [ "$out" = "vm2image: refusing to write a tar archive to a terminal: give -o FILE or redirect standard output" ] ||
	fail "export to a terminal: exit $rc, '$out'"
say "ok: export to a terminal -> exit $rc: $out"
expect 2 "did you mean --listen?" vm2image-agent --listn 127.0.0.1:0
expect 2 "did you mean --token-file?" vm2image convert 127.0.0.1 --tokenfile token -o x.tar
vm2image-agent --help | grep -q '^Examples:' || fail "vm2image-agent --help shows no examples"
vm2image --version | grep -q '^vm2image ' || fail "vm2image --version"
vm2image-agent version | grep -q '^vm2image-agent ' || fail "vm2image-agent version"
say "ok: --help, --version and version answer on both binaries"

# Ctrl-C in the middle of a conversion (once it has connected): exit 130 and one error line
# (the lines before it are the progress display's), nothing left behind.
vm2image convert 127.0.0.1 --token-file token --fingerprint "$FP" -o ctrlc.tar 2> ctrlc.err > /dev/null &
bg=$!
for _ in $(seq 1 400); do
	grep -q '^vm2image: connect done' ctrlc.err && break
	sleep 0.05
done
kill -INT "$bg"
rc=0
wait "$bg" || rc=$?
bg=""
[ "$rc" -eq 130 ] || fail "Ctrl-C: exit $rc, want 130 ($(cat ctrlc.err))"
errors=$(grep -Ev '^vm2image: [a-z]+(\.\.\.| done in | failed after )' ctrlc.err || true)
[ "$errors" = "vm2image: interrupted by SIGINT" ] || fail "Ctrl-C printed, besides progress: $errors"
leftover=$(ls -A | grep ctrlc | grep -v '^ctrlc.err$' || true)
[ -z "$leftover" ] || fail "Ctrl-C left $leftover"
say "ok: Ctrl-C after $(grep -c ' done in ' ctrlc.err) phases -> exit 130: $errors"

say "5. everything removed from the VM (README block 4)"
run_block 4
[ ! -e /tmp/vm2image-tunnel ] || fail "the tunnel is still open"
[ ! -e "$agentdir" ] || fail "/run/vm2image is left on the VM: $(ls -A "$agentdir")"
for _ in $(seq 1 50); do [ -z "$(ss -ltnH 'sport = :49153')" ] && break; sleep 0.1; done
[ -z "$(ss -ltnH 'sport = :49153')" ] || fail "the agent still listens after the README's removal"
expect 1 "127.0.0.1:49153" vm2image inspect 127.0.0.1 --token-file token

ended=$(date +%s.%N)
say "PASSED in $(awk "BEGIN { printf \"%.1f\", $ended - $started }") s (README block 3, inspect to docker build: $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s)"
