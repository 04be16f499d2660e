#!/usr/bin/env python3
"""Fails when a package of the workspace depends on a package above it.

    tools/layering/check_layering.py            # runs `bazel query` itself
    bazel query ... --output=graph | tools/layering/check_layering.py -

The order is //:layers.bzl's LAYERS, lowest first: a package may depend on
its own top-level package and on lower layers, never on one of the same
layer or above. A label matching one of layers.bzl's TARGET_PACKAGES counts
as part of that package (each //models/<arch>:train binary is in train's).

Every direct edge of every target counts (deps, data, srcs; tests and
binaries too), read from
`bazel query --noimplicit_deps --output=graph 'deps(//..., 1)'`. External
repositories (@absl, ...) and //third_party are outside the order.
"""

import ast
import os
import re
import subprocess
import sys

LAYERS_BZL = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          os.pardir, os.pardir, "layers.bzl")
OUTSIDE = {"third_party", ""}
EDGE = re.compile(r'^\s*"([^"]+)"\s*->\s*"([^"]+)"')


def read_layers(path=LAYERS_BZL):
    """(ranks, target_packages) from the assignments of layers.bzl."""
    values = {}
    with open(path) as f:
        for node in ast.parse(f.read()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                values[node.targets[0].id] = ast.literal_eval(node.value)
    ranks = {p: i for i, layer in enumerate(values["LAYERS"]) for p in layer}
    return ranks, values["TARGET_PACKAGES"]


def package_of(label, target_packages):
    """'//models/lenet:lenet' -> 'models'; None for external labels."""
    if not label.startswith("//"):
        return None
    for pattern, package in target_packages.items():
        if re.fullmatch(pattern, label):
            return package
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


def violations(edges, ranks, target_packages):
    """One line per edge that breaks the order, sorted."""
    problems = set()
    for a, b in edges:
        pa, pb = package_of(a, target_packages), package_of(b, target_packages)
        if pa is None or pb is None or pa == pb:
            continue
        if pa in OUTSIDE or pb in OUTSIDE:
            continue
        unknown = [(p, label) for p, label in ((pa, a), (pb, b))
                   if p not in ranks]
        for p, label in unknown:
            problems.add(f"{label}: package '{p}' is not in the layer order "
                         "(add it to LAYERS in layers.bzl)")
        if not unknown and ranks[pb] >= ranks[pa]:
            problems.add(f"{a} -> {b}: '{pa}' (layer {ranks[pa]}) may not "
                         f"depend on '{pb}' (layer {ranks[pb]})")
    return sorted(problems)


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
    problems = violations(edges, *read_layers())
    for line in problems:
        print("FAIL: " + line)
    print(f"{len(edges)} edges checked, {len(problems)} breaking the layer "
          "order")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
