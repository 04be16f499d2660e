"""train_tests(): the tests of //train, declared by train/BUILD.

The libraries are train/BUILD's; their tests are here, each with its size
and tags (opt_only: left out of CI's sanitizer step, .ci/run). The labels
are train/BUILD's own (//train:training_test, ...): call train_tests() from
that file alone.

The test helpers are //train/testing's: small runs on fake data
(:small_runs) and trainer processes (:trainer_process).
"""

def train_tests():
    """Declares the cc_tests of //train."""
    # The training loop end to end on fake data, one test per concern:
    # outputs, determinism and divergence (training_test), resuming
    # (resume_test), damaged checkpoint files (checkpoint_files_test), a
    # directory that already holds a run (existing_run_test).
    native.cc_test(
        name = "training_test",
        size = "small",
        srcs = ["training_test.cc"],
        deps = [
            ":evaluation",
            ":training",
            "//datasets/testing:fake_data",
            "//models/bn_lenet",
            "//models/lenet",
            "//models/mlp",
            "//models/softmax",
            "//tensor",
            "//tensor:safetensors",
            "//train/testing:small_runs",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "evaluation_test",
        size = "small",
        srcs = ["evaluation_test.cc"],
        deps = [
            ":evaluation",
            "//datasets:dataset",
            "//nn:flatten",
            "//nn:linear",
            "//nn:sequential",
            "//tensor",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "resume_test",
        # Medium: 10 s optimized and 28 s under ASan + UBSan
        # (--config=sanitize) on a 2-core EPYC, too near small's 60 s on a
        # loaded machine.
        size = "medium",
        srcs = ["resume_test.cc"],
        deps = [
            ":stop",
            ":train_state",
            ":training",
            "//datasets/testing:fake_data",
            "//distributed:process_group",
            "//models/bn_lenet",
            "//models/lenet",
            "//models/mlp",
            "//models/softmax",
            "//tensor:cpu",
            "//tensor/testing:logged_warnings",
            "//train/testing:small_runs",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "checkpoint_files_test",
        size = "small",
        srcs = ["checkpoint_files_test.cc"],
        deps = [
            ":training",
            "//models/bn_lenet",
            "//models/lenet",
            "//models/softmax",
            "//tensor",
            "//tensor:safetensors",
            "//train/testing:small_runs",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "existing_run_test",
        size = "small",
        srcs = ["existing_run_test.cc"],
        deps = [
            ":training",
            "//models/mlp",
            "//models/softmax",
            "//train/testing:small_runs",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "kill_during_save_test",
        size = "large",
        # Kill-and-resume loops of whole trainer processes: minutes under the
        # sanitizers; the checkpoint code they run is also in the tests above.
        tags = ["opt_only"],
        srcs = ["kill_during_save_test.cc"],
        data = [
            "//models/bn_lenet:train",
            "//models/mlp:train",
        ],
        deps = [
            ":training",
            "//datasets/testing:fake_data",
            "//models/mlp",
            "//tensor:safetensors",
            "//train/testing:small_runs",
            "//train/testing:trainer_process",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "distributed_training_test",
        size = "small",
        srcs = ["distributed_training_test.cc"],
        data = [
            "//models/lenet:train",
            "@fashion_mnist//:files",
        ],
        deps = [
            "//distributed:testing",
            "//tensor",
            "//tensor:safetensors",
            "@absl//:strings",
            "@bazel_tools//tools/cpp/runfiles",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "layer_profiler_test",
        size = "small",
        srcs = ["layer_profiler_test.cc"],
        deps = [
            ":layer_profiler",
            ":training",
            "//autograd:functions",
            "//models/lenet",
            "//train/testing:small_runs",
            "//autograd:variable",
            "//nn:activation",
            "//nn:containers",
            "//nn:conv2d",
            "//nn:linear",
            "//nn:sequential",
            "//tensor:gemm",
            "//tensor:random",
            "//datasets/testing:fake_data",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "options_test",
        size = "small",
        srcs = ["options_test.cc"],
        deps = [
            ":options",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "run_dir_test",
        size = "small",
        srcs = ["run_dir_test.cc"],
        deps = [
            ":checkpoint",
            ":run_dir",
            "@absl//:status",
            "@absl//:strings",
            "@googletest//:gmock",
            "@googletest//:gtest_main",
        ],
    )

    native.cc_test(
        name = "plot_test",
        size = "small",
        srcs = ["plot_test.cc"],
        deps = [
            ":plot",
            "@absl//:strings",
            "@googletest//:gtest_main",
        ],
    )
