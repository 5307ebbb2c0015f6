#!/usr/bin/env python3
"""Prints every host name in the Chromium HSTS preload list that PyPI's `hstspreload` (BSD-3)
carries, one per line: the benign half of the domain model's training data.

The package only answers "is this host preloaded?"; its data file is a set of length-prefixed
entries reached through a jump table, and every leaf entry holds a whole host name, so walking
all entries of all jump-table slots lists the set.
"""
import importlib.util
import os
import re
import sys

spec = importlib.util.find_spec("hstspreload")
if spec is None or spec.origin is None:
    sys.exit("hsts-names.py: the hstspreload package is not installed (pip install hstspreload)")
pkg = os.path.dirname(spec.origin)
src = open(spec.origin, encoding="utf-8").read()
m = re.search(r"^__version__ = \"([^\"]+)\"", src, re.M)
table = re.search(r"^_JUMPTABLE = (\[.*\]\])", src, re.M)
if not m or not table:
    sys.exit("hsts-names.py: unexpected hstspreload layout")
# The table is a Python literal of lists, tuples of ints and None.
jump = eval(table.group(1), {"__builtins__": {}}, {"None": None})  # noqa: S307 - literal only
data = open(os.path.join(pkg, "hstspreload.bin"), "rb").read()
names = set()
for layer in jump:
    for slot in layer:
        if slot is None:
            continue
        off, size = slot
        chunk = data[off : off + size]
        i = 0
        while i + 2 <= len(chunk):
            flags, n = chunk[i], chunk[i + 1]
            label = chunk[i + 2 : i + 2 + n]
            i += 2 + n
            if flags & 0x80:
                names.add(label.decode("ascii", "replace").lower())
sys.stderr.write(f"hstspreload {m.group(1)}: {len(names)} names\n")
for n in sorted(names):
    print(n)
