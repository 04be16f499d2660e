#!/usr/bin/env python3
"""Fails when a package of the workspace depends on a package above it.

    tools/layering/check_layering.py            # runs `bazel query` itself
    bazel query ... --output=graph | tools/layering/check_layering.py -

The order, lowest first (a package may depend on its own top-level package
and on lower ones, never on one of the same rank or above):

    tensor
    autograd, datasets
    nn, optim
    models, distributed
    cheatsheet, tools
    bench, examples

Every direct edge of every target counts (deps, data, srcs; tests and
binaries too), read from
`bazel query --noimplicit_deps --output=graph 'deps(//..., 1)'`. External
repositories (@absl, ...) and //third_party are outside the order.
KNOWN_EXCEPTIONS lists the edges that break it today, each with the reason;
the check fails on any other, and on an exception that no longer occurs
(remove it then).
"""

import re
import subprocess
import sys

RANKS = {
    "tensor": 0,
    "autograd": 1,
    "datasets": 1,
    "nn": 2,
    "optim": 2,
    "distributed": 3,
    "models": 3,
    "cheatsheet": 4,
    "tools": 4,
    "bench": 5,
    "examples": 5,
}
OUTSIDE = {"third_party", ""}

# Edges that break the order today, as (from-label pattern, to-label
# pattern): why each is allowed for now.
KNOWN_EXCEPTIONS = {
    (r"//models/\w+:train", r"//tools:trainer_main"):
        "each //models/<arch>:train binary is a main() over "
        "//tools:trainer_main; issue 15 moves the training loop into a "
        "package between models and tools",
}

EDGE = re.compile(r'^\s*"([^"]+)"\s*->\s*"([^"]+)"')


def top_package(label):
    """'//models/lenet:train' -> 'models'; None for external labels."""
    if not label.startswith("//"):
        return None
    return label[2:].split(":")[0].split("/")[0]


def parse_graph(text):
    """The (from, to) label pairs of `bazel query --output=graph` text.

    Nodes that bazel factors together ("//a:x\\n//a:y") are split."""
    edges = []
    for line in text.splitlines():
        m = EDGE.match(line)
        if not m:
            continue
        for a in m.group(1).split("\\n"):
            for b in m.group(2).split("\\n"):
                edges.append((a, b))
    return edges


def violations(edges, ranks=RANKS, exceptions=KNOWN_EXCEPTIONS):
    """(problems, used exceptions): one line per edge that breaks the order."""
    problems, used = [], set()
    for a, b in edges:
        pa, pb = top_package(a), top_package(b)
        if pa is None or pb is None or pa == pb:
            continue
        if pa in OUTSIDE or pb in OUTSIDE:
            continue
        for p, label in ((pa, a), (pb, b)):
            if p not in ranks:
                problems.append(
                    f"{label}: package '{p}' is not in the layer order "
                    "(add it to RANKS in tools/layering/check_layering.py)")
        if pa not in ranks or pb not in ranks:
            continue
        if ranks[pb] < ranks[pa]:
            continue
        allowed = [key for key in exceptions
                   if re.fullmatch(key[0], a) and re.fullmatch(key[1], b)]
        if allowed:
            used.update(allowed)
            continue
        problems.append(
            f"{a} -> {b}: '{pa}' (rank {ranks[pa]}) may not depend on "
            f"'{pb}' (rank {ranks[pb]})")
    return sorted(set(problems)), used


def main(argv):
    if len(argv) > 1 and argv[1] == "-":
        text = sys.stdin.read()
    else:
        text = subprocess.run(
            ["bazel", "query", "--noimplicit_deps", "--output=graph",
             "--graph:factored=false", "deps(//..., 1)"],
            check=True, capture_output=True, text=True).stdout
    edges = parse_graph(text)
    if not edges:
        print("FAIL: bazel query listed no dependency edges")
        return 1
    problems, used = violations(edges)
    for stale in sorted(set(KNOWN_EXCEPTIONS) - used):
        problems.append(f"known exception {stale[0]} -> {stale[1]} matches "
                        "no edge: remove it from KNOWN_EXCEPTIONS")
    for line in problems:
        print("FAIL: " + line)
    print(f"{len(edges)} edges checked, {len(problems)} breaking the layer "
          f"order, {len(used)} known exceptions")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
