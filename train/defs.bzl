"""dive_trainer(): a trainer binary beside the models it trains.

A trainer is a `main()` over //train:trainer_main (`TrainerMain` on a
ModelSpec), so it belongs to the train layer, while its BUILD file sits in
models/<name>, so that it reads `bazel run //models/<name>:train`. The layer
order (layers.bzl) puts a target that a macro declares in the layer of the
package whose .bzl file defines the macro (tools/layering/check_layering.py
reads Bazel's generator_function): every target this macro declares is in
train's layer wherever it is called, and no list of exceptions is kept.

    :<name>   cc_binary on Fashion-MNIST: srcs, //train:trainer_main, + deps;
              visible to the train layer and above (//:train_clients)

Call it from the BUILD file itself, not from another macro: Bazel records
only the outermost macro, whose .bzl would then decide the layer.

Example (models/lenet/BUILD):

    load("//models:defs.bzl", "dive_model")
    load("//train:defs.bzl", "dive_trainer")

    dive_model(name = "lenet", deps = [...])

    dive_trainer(deps = [":lenet"])
"""

def dive_trainer(name = "train", srcs = ["train.cc"], deps = []):
    """Declares the trainer binary :<name> (`bazel run //models/<arch>:train`).

    Args:
      name: the binary, "train" by convention.
      srcs: its main(), which calls dive::train::TrainerMain on a ModelSpec.
      deps: what srcs use besides //train:trainer_main: the model's library
        (":lenet"), and e.g. "@absl//:flags" for flags of its own.
    """
    native.cc_binary(
        name = name,
        srcs = srcs,
        data = ["@fashion_mnist//:files"],
        deps = ["//train:trainer_main"] + deps,
        visibility = ["//:train_clients"],
    )
