#!/usr/bin/env python3
"""Fails when a package of the workspace depends on a package above it.

    tools/layering/check_layering.py            # runs `bazel query` itself
    bazel query ... --output=xml | tools/layering/check_layering.py -

The order is //:layers.bzl's LAYERS, lowest first: a package may depend on
its own top-level package and on lower layers, never on one of the same
layer or above.

A target belongs to the top-level package of its label, except one that a
macro declares: Bazel records the macro as the rule's generator_function,
and the target belongs to the package of the workspace .bzl file that
defines a function of that name. So //models/lenet:train, which
models/lenet/BUILD declares with //train:defs.bzl's dive_trainer(), is part
of train. Macros of the root package (layers.bzl), of //third_party and of
external repositories leave their targets where they are. There is no list
of exceptions.

Every direct edge of every target counts (deps, data, srcs; tests and
binaries too), read with the macros from
`bazel query --noimplicit_deps --output=xml 'deps(//..., 1)'`. External
repositories (@absl, ...) and //third_party are outside the order.
"""

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                    os.pardir)
LAYERS_BZL = os.path.join(ROOT, "layers.bzl")
OUTSIDE = {"third_party", ""}
MACRO = re.compile(r"^def\s+([A-Za-z]\w*)\s*\(", re.MULTILINE)
CHAR_REF = re.compile(r"&#([0-9]+|[xX][0-9a-fA-F]+);")


def read_layers(path=LAYERS_BZL):
    """{package: rank} from the LAYERS assignment of layers.bzl."""
    with open(path) as f:
        for node in ast.parse(f.read()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and
                    node.targets[0].id == "LAYERS"):
                layers = ast.literal_eval(node.value)
                return {p: i for i, layer in enumerate(layers) for p in layer}
    raise ValueError(f"{path} assigns no LAYERS")


def macro_packages(root=ROOT):
    """{macro: top-level package} for the public functions of the .bzl files
    below `root` (Bazel's output trees, external/, hidden folders and the
    packages outside the order left out). ValueError when two packages
    define the same name: a rule would not tell which one made it."""
    found = {}
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        package = "" if rel == "." else rel.split(os.sep)[0]
        if rel == ".":
            dirs[:] = [d for d in dirs if d not in OUTSIDE and
                       d != "external" and not d.startswith("bazel-")]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if package in OUTSIDE:
            continue  # the root's own .bzl files
        for name in files:
            if not name.endswith(".bzl"):
                continue
            with open(os.path.join(folder, name)) as f:
                for macro in MACRO.findall(f.read()):
                    found.setdefault(macro, set()).add(package)
    clashes = {m: p for m, p in found.items() if len(p) > 1}
    if clashes:
        raise ValueError("macros defined in the .bzl files of several "
                         "packages: " + "; ".join(
                             f"{m} ({', '.join(sorted(p))})"
                             for m, p in sorted(clashes.items())))
    return {m: p.pop() for m, p in found.items()}


def _is_control(ref):
    """True for the number of a character reference ('27', 'x1b') that
    names a control character other than tab, newline and carriage return."""
    code = int(ref[1:], 16) if ref[0] in "xX" else int(ref)
    return code < 0x20 and code not in (0x9, 0xA, 0xD)


def parse_query(text):
    """(edges, generators) of `bazel query --output=xml` text: the (rule,
    direct input) label pairs, and {rule: generator_function} for the rules
    that a macro declared."""
    # Bazel declares XML 1.1, which Python's parser refuses, and may refer to
    # control characters (in a string attribute) that 1.0 forbids; no label
    # has one, so they go.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    text = CHAR_REF.sub(
        lambda m: "" if _is_control(m.group(1)) else m.group(0), text)
    edges, generators = [], {}
    for rule in ElementTree.fromstring(text).iter("rule"):
        label = rule.get("name")
        for child in rule:
            if child.tag == "rule-input":
                edges.append((label, child.get("name")))
            elif (child.tag == "string" and
                  child.get("name") == "generator_function" and
                  child.get("value")):
                generators[label] = child.get("value")
    return edges, generators


def package_of(label, generators, macros):
    """'//models/lenet:lenet' -> 'models'; the package of its macro's .bzl
    for a macro-made rule ('//models/lenet:train' -> 'train'); None for
    external labels."""
    if not label.startswith("//"):
        return None
    package = macros.get(generators.get(label))
    return package or label[2:].split(":")[0].split("/")[0]


def violations(edges, ranks, generators, macros):
    """One line per edge that breaks the order, sorted."""
    problems = set()
    for a, b in edges:
        pa = package_of(a, generators, macros)
        pb = package_of(b, generators, macros)
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
            ["bazel", "query", "--noimplicit_deps", "--output=xml",
             "deps(//..., 1)"],
            check=True, capture_output=True, text=True).stdout
    edges, generators = parse_query(text)
    if not edges:
        print("FAIL: bazel query listed no dependency edges")
        return 1
    try:
        macros = macro_packages()
    except ValueError as e:
        print(f"FAIL: {e}")
        return 1
    problems = violations(edges, read_layers(), generators, macros)
    for line in problems:
        print("FAIL: " + line)
    moved = sum(1 for label in generators
                if package_of(label, generators, macros) !=
                package_of(label, {}, {}))
    print(f"{len(edges)} edges checked, {len(problems)} breaking the layer "
          f"order ({moved} targets counted in the package of the macro "
          "that declares them)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
