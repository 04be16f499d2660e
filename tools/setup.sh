#!/usr/bin/env bash
# Installs the Debian 12 packages dive needs to build and test, offline-friendly.
#
#   tools/setup.sh              required build/test dependencies
#   tools/setup.sh --reference  also the PyTorch reference used by benchmarks
#
# Idempotent: only missing packages are installed, and `apt-get update` runs
# only if something is missing, so a no-op run takes well under a second.
set -euo pipefail

REQUIRED=(
  bazel-bootstrap       # Bazel 4.2.3 (WORKSPACE mode)
  g++                   # gcc 12, OpenMP (libgomp), sanitizers
  pkg-config
  python3               # bench/regression.py (CI's speed check)
  libeigen3-dev         # @eigen
  libabsl-dev           # @absl
  libgoogle-glog-dev    # @glog
  libgtest-dev          # @googletest
  libgmock-dev          # @googletest (gmock)
  libbenchmark-dev      # @google_benchmark
  zlib1g-dev            # @zlib
  libopenblas-dev       # @openblas: cblas.h, the baseline in bench/gemm_benchmark
  libopenblas0-openmp   # @openblas: the OpenMP build it links
  libdnnl-dev           # @onednn: oneDNN 2.6, bf16 convolutions (tensor/conv_onednn.h)
  libopenmpi-dev        # @openmpi (data-parallel training)
  openmpi-bin           # mpirun, to launch data-parallel training and its tests
  iproute2              # ip, tc: bench/netns_mpi.sh's namespaces, veths and tbf
  iptables              # iptables-legacy: netns_mpi.sh's NFQUEUE delay line (no netem)
  iputils-ping          # ping: netns_mpi.sh's measured round trip
  dataset-fashion-mnist # @fashion_mnist
  gnuplot-nox           # training curves (metrics.png)
  clang                 # libFuzzer targets (tools/fuzz.sh)
  libclang-rt-14-dev    # libFuzzer and sanitizer runtimes for clang
  libonnx-dev           # @onnx: ONNX export (tools/onnx_export.h)
  libprotobuf-dev       # @onnx: the protobuf runtime it is built on
  libcpp-httplib-dev    # @httplib: the training dashboard's HTTP server
  nlohmann-json3-dev    # @nlohmann_json: JSON (safetensors headers, dashboard)
  libjs-chart.js        # @chartjs: the training dashboard's charts
  chromium              # headless browser of the dashboard test
)

REFERENCE=(
  python3-torch         # PyTorch reference implementation for benchmarks
  python3-numpy
  libopenblas0-openmp   # OpenMP BLAS for the reference
)

usage() {
  sed -n '2,8s/^# \{0,1\}//p' "$0"
}

want=("${REQUIRED[@]}")
# Node.js and npm run ONNX Runtime in the ONNX export parity test; any
# installed build will do (Debian's, or one this machine came with).
command -v npm >/dev/null 2>&1 || want+=(nodejs npm)
for arg in "$@"; do
  case "$arg" in
    --reference) want+=("${REFERENCE[@]}") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

# One dpkg-query call for all packages. Unknown packages make dpkg-query exit
# non-zero and print nothing for them, hence `|| true` and the default below.
declare -A status=()
while IFS=$'\t' read -r pkg st; do
  status["${pkg%%:*}"]="$st"
done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${want[@]}" 2>/dev/null || true)

missing=()
for pkg in "${want[@]}"; do
  # "install ok installed" or "hold ok installed".
  if [[ "${status[$pkg]:-}" != *" ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing: ${missing[*]}" >&2
  SUDO=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      echo "setup.sh: not root and sudo not found; run as root or install:" >&2
      echo "  apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ONNX Runtime (npm onnxruntime-node, CPU build), pinned by
# tools/onnx/package-lock.json, for //tools:onnx_parity_test. Its install
# script, which only fetches the CUDA build, is skipped.
onnx_dir=$(cd "$(dirname "$0")" && pwd)/onnx
if [[ ! -f $onnx_dir/node_modules/.package-lock.json ||
      $onnx_dir/package-lock.json -nt $onnx_dir/node_modules/.package-lock.json ]]; then
  echo "setup.sh: installing onnxruntime-node into $onnx_dir/node_modules" >&2
  (cd "$onnx_dir" && ONNXRUNTIME_NODE_INSTALL_CUDA=skip \
     npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
