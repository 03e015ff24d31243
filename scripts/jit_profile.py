#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Attribute perf samples in JIT'd code to the loops of the kernel object RFJIT_DUMP wrote.

usage: jit_profile.py PERF_SCRIPT_OUT MAP_BASE_HEX OBJECT.o

PERF_SCRIPT_OUT is `perf script -F ip,sym,dso` output; MAP_BASE_HEX the start of the JIT's
executable mapping (rfjit_bench_profile prints it), which holds the object's .text from
offset 0. Prints the share of all samples outside the JIT by symbol, then every innermost
loop (a backward branch's range in the disassembly) with its share, size, FMA count and
first instructions: where a kernel's time goes, loop by loop.
"""
import collections
import re
import subprocess
import sys


def main():
    out, base, obj = sys.argv[1], int(sys.argv[2], 16), sys.argv[3]
    jit = collections.Counter()
    other = collections.Counter()
    total = 0
    for line in open(out):
        f = line.split()
        if not f:
            continue
        total += 1
        if "perf-" in line or "[unknown]" in line and len(f) >= 1 and int(f[0], 16) >= base:
            jit[int(f[0], 16) - base] += 1
        else:
            other[f[1] if len(f) > 1 else "?"] += 1
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", obj], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    ins = []
    for line in dis:
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if m:
            ins.append((int(m.group(1), 16), m.group(2)))
    end = ins[-1][0] + 16 if ins else 0
    inside = sum(v for k, v in jit.items() if 0 <= k < end)
    loops = []
    for off, text in ins:
        m = re.match(r"j\w+\s+([0-9a-f]+)", text)
        if m and int(m.group(1), 16) < off:
            loops.append((int(m.group(1), 16), off))
    share = collections.Counter()
    for off, _ in ins:
        best = None
        for a, b in loops:
            if a <= off <= b and (best is None or b - a < best[1] - best[0]):
                best = (a, b)
        share[best] += jit.get(off, 0)
    print(f"samples: {total}, in the kernel: {inside} ({100 * inside / max(total, 1):.1f}%)")
    for sym, n in other.most_common(5):
        print(f"  {100 * n / total:5.1f}%  {sym}")
    for k, n in share.most_common(15):
        if k is None:
            print(f"  {100 * n / total:5.1f}%  (outside loops)")
            continue
        body = [t for o, t in ins if k[0] <= o <= k[1]]
        fma = sum("vfmadd" in t for t in body)
        print(f"  {100 * n / total:5.1f}%  loop {k[0]:x}-{k[1]:x}: {len(body)} instructions, "
              f"{fma} FMA :: " + " | ".join(body[:3]))


if __name__ == "__main__":
    main()
