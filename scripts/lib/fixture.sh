# Shell functions shared by scripts/demo.sh and scripts/walkthrough.sh: the debootstrap base image
# in the engine and the WebVM fixture booted as a small VM (internal/testenv/mkroot). Source it
# from the repository's root; it defines functions only.

# fixture_mkroot WORK: builds the mkroot helper into WORK (fixture roots stay cached in
# /var/cache/vm2image-test, or $VM2IMAGE_CACHE).
fixture_mkroot() {
	go build -o "$1/mkroot" ./internal/testenv/mkroot
}

# fixture_base_image WORK: no Docker Hub here: the base image is a debootstrap minbase bookworm
# imported into the engine as debian:bookworm, which `--base auto` picks for a Debian 12 VM.
fixture_base_image() {
	if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
		echo "making the base image debian:bookworm (debootstrap minbase, cached)" >&2
		local base
		base=$("$1/mkroot" base)
		tar -C "$base" --numeric-owner --xattrs -cf - . | docker import - debian:bookworm >/dev/null
	fi
}

# fixture_boot WORK VMDIR AGENT TOKEN ADDR: boots the WebVM fixture (a copy of its cached root in
# VMDIR, nginx and a busybox httpd as user app, and the agent AGENT with TOKEN on ADDR; AGENT "-":
# no agent) in the background. Sets FIXTURE_PID (stop it with fixture_stop) and FIXTURE_LINE,
# mkroot's line: "agent ADDR nginx PORT app PORT fingerprint FP", or "vm PID nginx PORT app PORT"
# without an agent. Boot messages go to WORK/boot.log.
fixture_boot() {
	local work=$1
	rm -f "$work/boot.out"
	"$work/mkroot" boot "$2" "$3" "$4" "$5" > "$work/boot.out" 2> "$work/boot.log" &
	FIXTURE_PID=$!
	for _ in $(seq 1 900); do
		[ -s "$work/boot.out" ] && break
		kill -0 "$FIXTURE_PID" 2>/dev/null || { cat "$work/boot.log" >&2; return 1; }
		sleep 0.2
	done
	[ -s "$work/boot.out" ] || { echo "the fixture VM did not boot in 3 minutes" >&2; cat "$work/boot.log" >&2; return 1; }
	read -r FIXTURE_LINE < "$work/boot.out"
}

# fixture_stop: stops the VM fixture_boot started (mkroot kills every process of the VM).
fixture_stop() {
	if [ -n "${FIXTURE_PID:-}" ]; then
		kill "$FIXTURE_PID" 2>/dev/null || true
		wait "$FIXTURE_PID" 2>/dev/null || true
		FIXTURE_PID=
	fi
}
