"""dive_model(): the three targets of a models/<name> package.

Every architecture package under models/ has the same layout:

    models/<name>/<name>.h, <name>.cc   the book's constructor and its ModelSpec
    models/<name>/train.cc              `TrainerMain` on that spec
    models/<name>/<name>_test.cc        what only that architecture has (its
                                        blocks, their gradients); what every
                                        model promises is zoo_models_test.cc

and `dive_model(name = "<name>", ...)` declares its targets with the deps
that every such package has, so a BUILD file lists only its own:

    :<name>         cc_library: a Sequential (//nn:module, //nn:sequential)
                    with the book's init (//models:init) and a ModelSpec
                    (//models:spec), + deps; public, for reuse
    :train          cc_binary on Fashion-MNIST: :<name>, //train:trainer_main,
                    + train_deps; in the train layer (layers.bzl)
    :<name>_test    cc_test, size small: :<name>, //models:testing, random
                    inputs (//tensor, //tensor:random, //autograd:variable),
                    gtest/gmock with gtest_main, + test_deps

Example (models/lenet/BUILD):

    load("//models:defs.bzl", "dive_model")

    package(default_visibility = ["//visibility:private"])

    dive_model(
        name = "lenet",
        deps = ["//nn:conv2d", "//nn:linear", ...],
    )
"""

def dive_model(name, deps = [], test_deps = [], train_deps = []):
    """Declares :<name>, :train and :<name>_test for models/<name>.

    Args:
      name: the architecture, also the stem of <name>.h/.cc/_test.cc.
      deps: what <name>.h and <name>.cc use besides //models:init,
        //models:spec, //nn:module and //nn:sequential.
      test_deps: what <name>_test.cc uses besides the test deps above.
      train_deps: what train.cc uses besides :<name> and //train:trainer_main
        (e.g. "@absl//:flags" for its own flags).
    """
    native.cc_library(
        name = name,
        srcs = [name + ".cc"],
        hdrs = [name + ".h"],
        deps = [
            "//models:init",
            "//models:spec",
            "//nn:module",
            "//nn:sequential",
        ] + deps,
        visibility = ["//visibility:public"],
    )

    native.cc_binary(
        name = "train",
        srcs = ["train.cc"],
        data = ["@fashion_mnist//:files"],
        deps = [
            ":" + name,
            "//train:trainer_main",
        ] + train_deps,
        # The train layer's (layers.bzl): visible to it and the layers above.
        visibility = ["//:train_clients"],
    )

    native.cc_test(
        name = name + "_test",
        size = "small",
        srcs = [name + "_test.cc"],
        deps = [
            ":" + name,
            "//autograd:variable",
            "//models:spec",
            "//models:testing",
            "//tensor",
            "//tensor:random",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ] + test_deps,
    )
