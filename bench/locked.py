#!/usr/bin/env python3
"""locked.py CALLGRIND_OUT BINARY REQUESTS [TOP]

Lock-prefixed (atomic read-modify-write) instructions executed per request
by BINARY's own code, from a callgrind output written with
`--dump-instr=yes` (bench/instructions.sh does this when LOCKED=1).

An atomic read-modify-write costs tens of cycles however often it runs
uncontended, and callgrind counts it as one instruction: two programs with
the same instruction count can differ in time by their atomics. The
addresses of the `lock`-prefixed and `xchg` (implicitly locked)
instructions come from `objdump -d BINARY`; callgrind's per-instruction
counts are matched against them. Only BINARY's own object is counted (the
shared libraries' addresses are where they were mapped, not objdump's).

Prints the total per request, then the TOP (default 15) functions that
execute them.
"""
import collections
import re
import subprocess
import sys


def locked_addresses(binary):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary],
                         capture_output=True, text=True, check=True).stdout
    addrs = set()
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(lock |xchg\s)", line)
        if m and "%ax,%ax" not in line:
            addrs.add(int(m.group(1), 16))
    return addrs


def position(tok, last):
    if tok.startswith("+"):
        return last + int(tok[1:], 0)
    if tok.startswith("-"):
        return last - int(tok[1:], 0)
    if tok == "*":
        return last
    return int(tok, 0)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, binary, reqs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    locked = locked_addresses(binary)
    names = {}

    def name(tag, s):
        m = re.match(r"\((\d+)\)(?: (.*))?", s)
        if not m:
            return s
        if m.group(2):
            names[(tag, m.group(1))] = m.group(2)
        return names.get((tag, m.group(1)), s)

    fn = ob = None
    npos = 1  # position columns before the events ("instr line": 2)
    in_call = False
    addr = 0
    total = 0
    by_fn = collections.Counter()
    own = binary.rsplit("/", 1)[-1]
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("positions:"):
            npos = len(line.split()) - 1
        elif line.startswith("fn="):
            fn = name("fn", line[3:])
        elif line.startswith("ob="):
            ob = name("ob", line[3:])
        elif line.startswith("cfn="):
            name("fn", line[4:])
        elif line.startswith("cob="):
            name("ob", line[4:])
        elif line.startswith("calls="):
            in_call = True
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            addr = position(parts[0], addr)
            if in_call:  # the call's inclusive cost, not this instruction's
                in_call = False
                continue
            if ob and ob.endswith(own) and addr in locked and len(parts) > npos:
                count = int(parts[npos])  # Ir, the first event
                total += count
                by_fn[fn] += count
    print(f"locked instructions per request: {total / reqs:.1f}")
    for f, c in by_fn.most_common(top):
        print(f"{c / reqs:7.2f}  {f[:140]}")


if __name__ == "__main__":
    main()
