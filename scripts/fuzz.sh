#!/usr/bin/env bash
# Runs every native fuzz test of the module for a short time each (default 3s): part of `make test`.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
fuzztime=${1:-3s}
cd "$(dirname "$0")/.."
fail=0
while IFS= read -r file; do
	dir=$(dirname "${file#./}")
	for fz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
		echo "fuzz: ./$dir $fz ($fuzztime)"
		run() { go test -run='^$' -fuzz="^${fz}\$" -fuzztime="$fuzztime" -fuzzminimizetime=50x "./$dir" >/tmp/vm2image-fuzz.log 2>&1; }
		if ! run; then
			# Go's fuzz engine reports "context deadline exceeded" when its time ends while it
			# is still minimizing a new input on a busy machine: no input failed, so run again once.
			if grep -q 'context deadline exceeded' /tmp/vm2image-fuzz.log && ! grep -q 'Failing input written' /tmp/vm2image-fuzz.log; then
				echo "fuzz: ./$dir $fz: the engine's time ran out, no failing input: again"
				run && continue
			fi
			cat /tmp/vm2image-fuzz.log
			fail=1
		fi
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
exit $fail
