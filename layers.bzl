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

A target belongs to the package of its label, except one that a macro
declares: it belongs to the package of the .bzl file that defines the macro.
So each //models/<arch>:train binary, declared in models/<arch>/BUILD by
//train:defs.bzl's dive_trainer(), is in the train layer, and nothing here
lists exceptions.
"""

LAYERS = [
    ["tensor"],
    ["autograd", "datasets"],
    ["nn", "optim"],
    ["models", "distributed"],
    ["train", "quant"],
    ["cheatsheet", "tools"],
    ["bench", "examples"],
]

def layer_package_groups():
    """Declares "<package>_clients" for every package of LAYERS."""
    for i, layer in enumerate(LAYERS):
        above = [p for higher in LAYERS[i + 1:] for p in higher]
        for package in layer:
            native.package_group(
                name = package + "_clients",
                packages = ["//%s/..." % p for p in [package] + above],
            )
