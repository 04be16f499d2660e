"""dive_model(): the library and test of a models/<name> package.

Every architecture package under models/ has the same layout:

    models/<name>/<name>.h, <name>.cc   the book's constructor and its ModelSpec
    models/<name>/train.cc              `TrainerMain` on that spec
    models/<name>/<name>_test.cc        what only that architecture has (its
                                        blocks, their gradients); what every
                                        model promises is zoo_models_test.cc

and `dive_model(name = "<name>", ...)` declares its library and test with
the deps that every such package has, so a BUILD file lists only its own:

    :<name>         cc_library: a Sequential (//nn:module, //nn:sequential)
                    with the book's init (//models:init) and a ModelSpec
                    (//models:spec), + deps; public, for reuse
    :<name>_test    cc_test, size small: :<name>, //models:testing, random
                    inputs (//tensor, //tensor:random, //autograd:variable),
                    gtest/gmock with gtest_main, + test_deps

Its `:train` binary is declared beside them by dive_trainer() from
//train:defs.bzl: a main() over //train:trainer_main belongs to the train
layer, which a macro of this package (the models layer) may not declare.

Example (models/lenet/BUILD):

    load("//models:defs.bzl", "dive_model")
    load("//train:defs.bzl", "dive_trainer")

    package(default_visibility = ["//visibility:private"])

    dive_model(
        name = "lenet",
        deps = ["//nn:conv2d", "//nn:linear", ...],
    )

    dive_trainer(deps = [":lenet"])
"""

def dive_model(name, deps = [], test_deps = []):
    """Declares :<name> and :<name>_test for models/<name>.

    Args:
      name: the architecture, also the stem of <name>.h/.cc/_test.cc.
      deps: what <name>.h and <name>.cc use besides //models:init,
        //models:spec, //nn:module and //nn:sequential.
      test_deps: what <name>_test.cc uses besides the test deps above.
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
