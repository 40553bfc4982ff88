"""Summarise `perf script -F cpu,time,trace` of sched:sched_switch events
(stdin): per CPU and program, seconds run, switches out asleep (S) and
switches out while runnable (R, preempted). Used by switches.sh."""
import collections
import re
import sys

out = collections.Counter()
ran = collections.Counter()
last = {}
pat = re.compile(
    r"\s*\[(\d+)\]\s+([\d.]+):\s+prev_comm=(\S+).*?prev_state=(\S+) ==> next_comm=(\S+)")
for line in sys.stdin:
    m = pat.match(line)
    if not m:
        continue
    cpu, t, prev, state, nxt = int(m[1]), float(m[2]), m[3], m[4][0], m[5]
    if cpu in last and last[cpu][1] == prev:
        ran[(cpu, prev)] += t - last[cpu][0]
        out[(cpu, prev, state)] += 1
    last[cpu] = (t, nxt)
for (cpu, prog), secs in sorted(ran.items()):
    if secs < 0.005:
        continue
    print(f"  cpu{cpu} {prog[:16]:16} ran {secs:.3f} s  "
          f"asleep {out[(cpu, prog, 'S')]:6}  preempted {out[(cpu, prog, 'R')]:6}")
