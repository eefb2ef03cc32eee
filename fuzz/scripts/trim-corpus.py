#!/usr/bin/env python3
"""Trims a fuzz corpus to a size budget, keeping as many coverage edges as it can.

`cargo fuzz cmin` keeps every input that adds an edge, smallest first; for targets whose
rare edges need large inputs (proxy_config, resource_yaml) that can outgrow the
repository's budget. This picks inputs greedily by new edges per byte until the budget
is spent, from the per-input edges of a libFuzzer merge control file:

    B=target/x86_64-unknown-linux-gnu/release/proxy_config
    mkdir -p /tmp/out && $B -merge=1 -use_counters=0 -max_len=8192 \
        -merge_control_file=/tmp/ctl /tmp/out corpus/proxy_config
    scripts/trim-corpus.py /tmp/ctl 1000000      # prints what it would keep
    scripts/trim-corpus.py /tmp/ctl 1000000 --apply

The files named in the control file that are not kept are deleted with --apply.
"""
import os
import sys


def main():
    control, budget = sys.argv[1], int(sys.argv[2])
    apply = "--apply" in sys.argv[3:]
    lines = open(control).read().split("\n")
    count = int(lines[0])
    files = lines[2 : 2 + count]
    edges = {}
    for line in lines[2 + count :]:
        parts = line.split()
        if parts and parts[0] == "COV":
            edges[int(parts[1])] = set(map(int, parts[2:]))
    size = {i: os.path.getsize(files[i]) for i in edges}
    universe = set().union(*edges.values())
    kept, covered, spent = set(), set(), 0
    remaining = set(edges)
    while remaining:
        # A fixed cost per file, so many tiny inputs do not win over one useful one.
        best = max(remaining, key=lambda i: len(edges[i] - covered) / (size[i] + 64))
        remaining.discard(best)
        if not edges[best] - covered or spent + size[best] > budget:
            continue
        kept.add(best)
        covered |= edges[best]
        spent += size[best]
    print(
        f"{len(kept)} of {len(edges)} files, {spent} of {sum(size.values())} bytes, "
        f"{len(covered)} of {len(universe)} edges"
    )
    if apply:
        for i, name in enumerate(files):
            if i not in kept and os.path.exists(name):
                os.remove(name)


if __name__ == "__main__":
    main()
