"""The layer order of dive's top-level packages, lowest first.

A package may depend on its own subtree and on packages of lower layers,
never on one of its own layer or above. Two things read this list:

  - `layer_package_groups()` (called in //:BUILD) turns it into one
    package_group per package, "//:<package>_clients": the package's own
    subtree and every package above its layer. Each library names that group
    (or //visibility:public, for the targets meant for reuse from other
    workspaces) as its visibility, so Bazel itself refuses an edge that
    points down the order the wrong way.
  - tools/layering/check_layering.py, which checks every edge of the real
    build graph against it (public targets included), in .ci/run.
"""

LAYERS = [
    ["tensor"],
    ["autograd", "datasets"],
    ["nn", "optim"],
    ["models", "distributed"],
    ["train"],
    ["cheatsheet", "tools"],
    ["bench", "examples"],
]

# Targets that sit in another package's layer than their own: each
# //models/<arch>:train binary is a main() over //train:trainer_main, so it
# belongs to the train layer (it lives beside its model only so that
# `bazel run //models/<arch>:train` reads well). Patterns are regular
# expressions matched against the whole label.
TARGET_PACKAGES = {
    "//models/[a-z0-9_]+:train": "train",
}

def layer_package_groups():
    """Declares "<package>_clients" for every package of LAYERS."""
    for i, layer in enumerate(LAYERS):
        above = [p for higher in LAYERS[i + 1:] for p in higher]
        for package in layer:
            native.package_group(
                name = package + "_clients",
                packages = ["//%s/..." % p for p in [package] + above],
            )
