#!/usr/bin/env python3
"""Flash (.text) of the firmware by crate, from the linker map.

Usage: size_by_crate.py target/firmware.map

Every function sits in its own input section `.text.<mangled name>`; a
function is counted for the crate where it (or the impl it belongs to)
is written: the first crate root in its mangled name (v0 or legacy) (generic code
instantiated for the firmware's types counts for the crate that wrote
it). Sections without a Rust name (compiler builtins, assembly) go to
"(other)".
"""
import re
import sys
from collections import Counter

FOCA = ("foca_core", "foca_codec", "foca_embassy", "postcard")
line_re = re.compile(r"^\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+.*\(\.text\.(\S+)\)$")


def crate_of(mangled):
    if mangled.startswith("_ZN"):
        # Legacy: the first path component; for `<Type as Trait>::f`, the
        # crate of `Type`.
        m = re.match(r"_ZN(\d+)", mangled)
        first = mangled[m.end():m.end() + int(m.group(1))]
        first = re.sub(r"^_?(\$LT\$|\$RF\$|\$BP\$|mut\$u20\$|\$u5b\$)*", "", first)
        return re.match(r"[A-Za-z0-9_]*", first).group(0) or "(other)"
    if not mangled.startswith("_R"):
        return "(other)"
    m = re.search(r"C(?:s[0-9A-Za-z]*_)?(\d+)", mangled)
    if not m:
        return "(other)"
    n, start = int(m.group(1)), m.end(1)
    start += mangled[start] == "_"
    return mangled[start:start + n]


sizes = Counter()
for line in open(sys.argv[1]):
    m = line_re.match(line)
    if m:
        sizes[crate_of(m.group(2))] += int(m.group(1), 16)
total = sum(sizes.values())
for crate, size in sizes.most_common():
    print(f"{size:>8}  {crate}")
foca = sum(sizes[c] for c in FOCA)
print(f"{total:>8}  total in .text.* input sections")
print(f"{foca:>8}  foca-core + foca-codec + foca-embassy + postcard ({foca / 1024:.1f} KiB)")
