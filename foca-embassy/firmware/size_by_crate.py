#!/usr/bin/env python3
"""Flash and RAM of the firmware, from the linker map.

Usage: size_by_crate.py target/firmware.map [--check]

Prints the output sections (.text, .rodata, .data, .bss), the .text by
crate and the largest .bss items. Every function sits in its own input
section `.text.<mangled name>`; it is counted for the crate that wrote it
(or the type it is an impl of): the first crate in its mangled name (v0
or legacy). Generic code instantiated for the firmware's types, and what
the optimizer inlined into it, counts for the crate that wrote the outer
function. Sections without a Rust name (compiler builtins, assembly) go
to "(other)". With --check, fails unless .text is at most 256 KiB and
foca-core + foca-codec + foca-embassy + postcard at most 64 KiB of it.
"""
import re
import sys
from collections import Counter

FOCA = ("foca_core", "foca_codec", "foca_embassy", "postcard")
INPUT = re.compile(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+.*\((\.[a-z]+)\.(\S+)\)$")
OUTPUT = re.compile(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ (\.[a-z_]+)$")


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


def short(mangled):
    if not mangled.startswith("_ZN"):
        return mangled[:90]
    parts, i = [], 3
    while i < len(mangled) and mangled[i].isdigit():
        j = i
        while mangled[j].isdigit():
            j += 1
        n = int(mangled[i:j])
        parts.append(mangled[j:j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    return "::".join(parts)[:90]


sections, text, bss = {}, Counter(), []
for line in open(sys.argv[1]):
    m = OUTPUT.match(line)
    if m:
        sections[m.group(2)] = int(m.group(1), 16)
        continue
    m = INPUT.match(line)
    if m and m.group(2) == ".text":
        text[crate_of(m.group(3))] += int(m.group(1), 16)
    elif m and m.group(2) == ".bss":
        bss.append((int(m.group(1), 16), short(m.group(3))))

for name in (".vector_table", ".text", ".rodata", ".data", ".bss"):
    print(f"{sections.get(name, 0):>8}  {name}")
print("\n.text by crate:")
for crate, size in text.most_common(12):
    print(f"{size:>8}  {crate}")
foca = sum(text[c] for c in FOCA)
print(f"{foca:>8}  foca-core + foca-codec + foca-embassy + postcard ({foca / 1024:.1f} KiB)")
print("\nlargest .bss items:")
for size, name in sorted(bss, reverse=True)[:5]:
    print(f"{size:>8}  {name}")

if "--check" in sys.argv:
    ok = sections.get(".text", 0) <= 256 * 1024 and foca <= 64 * 1024
    print("\nflash budget:", "ok" if ok else "EXCEEDED (.text <= 256 KiB, foca share <= 64 KiB)")
    sys.exit(0 if ok else 1)
