#!/usr/bin/env python3
"""The floor of a fleet's storage: every distinct file content under the roots given as
arguments, compressed once (zlib level 6, gzip -6's deflate), summed in bytes. Symlinks and
what is not a regular file are left out; unreadable files are skipped. Used by
experiments/fleet.sh and bench/fleet.sh."""
import hashlib
import os
import sys
import zlib

seen, total = set(), 0
for root in sys.argv[1:]:
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                with open(p, "rb") as fh:
                    b = fh.read()
            except OSError:
                continue
            h = hashlib.sha256(b).digest()
            if h not in seen:
                seen.add(h)
                total += len(zlib.compress(b, 6))
print(total)
