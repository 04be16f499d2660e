"""dive's external repositories, for dive's own WORKSPACE and for any Bazel
project that uses dive's packages (see examples/reuse/WORKSPACE):

    local_repository(name = "dive", path = "/path/to/dive")
    load("@dive//third_party:workspace.bzl", "dive_dependencies")
    dive_dependencies(dive_path = "/path/to/dive")

Everything comes from Debian 12 packages (tools/setup.sh installs them):
nothing is downloaded. `dive_path` is where dive's checkout lives, absolute
or relative to the calling workspace's root; it locates the offline stand-ins
for rules_cc, rules_java and remote_coverage_tools that Bazel 4.2.3 would
otherwise fetch.
"""

def _system_library(name, build_file, path):
    if not native.existing_rule(name):
        native.new_local_repository(
            name = name,
            build_file = str(Label("//third_party:" + build_file)),
            path = path,
        )

def dive_dependencies(dive_path = "."):
    for name in ["rules_cc", "rules_java", "remote_coverage_tools"]:
        if not native.existing_rule(name):
            native.local_repository(
                name = name,
                path = dive_path + "/third_party/bazel/" + name,
            )

    # Headers are found in /usr/include (a builtin include directory of the
    # auto-configured gcc toolchain) except for Eigen and Open MPI; link flags
    # are hard-coded from pkg-config (or `mpicc -showme`) on Debian 12.
    _system_library("eigen", "eigen.BUILD", "/usr/include/eigen3")
    _system_library("absl", "absl.BUILD", "/usr/include/absl")
    _system_library("glog", "glog.BUILD", "/usr/include/glog")
    _system_library("googletest", "googletest.BUILD", "/usr/src/googletest")
    _system_library("google_benchmark", "google_benchmark.BUILD", "/usr/include/benchmark")
    _system_library("zlib", "zlib.BUILD", "/usr/include")
    _system_library("openmpi", "openmpi.BUILD", "/usr/lib/x86_64-linux-gnu/openmpi/include")
    _system_library("openblas", "openblas.BUILD", "/usr/include/x86_64-linux-gnu")
    _system_library("onnx", "onnx.BUILD", "/usr/include/onnx")
    _system_library("onednn", "onednn.BUILD", "/usr/include/oneapi/dnnl")
    _system_library("httplib", "httplib.BUILD", "/usr/include")
    _system_library("nlohmann_json", "nlohmann_json.BUILD", "/usr/include/nlohmann")
    _system_library("chartjs", "chartjs.BUILD", "/usr/share/javascript/chart.js")

    # Fashion-MNIST (dataset-fashion-mnist), so the data files are real Bazel
    # inputs of the trainers and tests.
    _system_library("fashion_mnist", "fashion_mnist.BUILD", "/usr/share/datasets/fashion-mnist")
