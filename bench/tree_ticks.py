#!/usr/bin/python3
"""Prints the CPU ticks (user + system, /proc/<pid>/stat fields 14 and 15)
used so far by the given pids and all their descendants: the benchmark
scripts' "CPU per request" and "other CPU load" come from differences of
this between two points in time.

Usage: tree_ticks.py PID...
"""
import os
import sys


def main(args):
    roots = {int(a) for a in args}
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        procs[int(d)] = (int(f[1]), int(f[11]) + int(f[12]))
    total, todo, seen = 0, list(roots), set()
    while todo:
        p = todo.pop()
        if p in seen or p not in procs:
            continue
        seen.add(p)
        total += procs[p][1]
        todo += [c for c, (pp, _) in procs.items() if pp == p]
    print(total)


if __name__ == "__main__":
    main(sys.argv[1:])
