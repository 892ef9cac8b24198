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
		if ! go test -run='^$' -fuzz="^${fz}\$" -fuzztime="$fuzztime" -fuzzminimizetime=50x "./$dir" >/tmp/vm2image-fuzz.log 2>&1; then
			cat /tmp/vm2image-fuzz.log
			fail=1
		fi
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
exit $fail
