#!/usr/bin/env bash
# Where the time of a model's training step goes: samples `bench/throughput`
# with perf (software cpu-clock, so it works in VMs without hardware
# counters) and prints the functions by self time, then dive's functions by
# inclusive time (call graphs unwound with DWARF from .eh_frame; no rebuild
# needed, but calls inside OpenMP regions are attributed only partly).
#
#   bench/profile.sh lenet               # 1 thread, 40 steps
#   bench/profile.sh resnet 2 6          # MODEL [THREADS] [STEPS] [MODE]
#   MIN_PERCENT=0.3 bench/profile.sh bn_lenet 1 40 infer
#
# Needs perf (apt-get install linux-perf).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

model="${1:?usage: bench/profile.sh MODEL [THREADS] [STEPS] [MODE]}"
threads="${2:-1}"
steps="${3:-40}"
mode="${4:-train}"
min="${MIN_PERCENT:-1}"

bazel build //bench:throughput >&2
# Not the bazel-bin symlink: it follows whichever --config ran last.
bin="$(bazel info bazel-bin 2>/dev/null)/bench/throughput"
out="$(mktemp -d "${TMPDIR:-/tmp}/dive-profile.XXXXXX")"
trap 'rm -rf "$out"' EXIT

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
perf record -q -e cpu-clock -F 1000 --call-graph dwarf,16384 -o "$out/perf.data" \
  "$bin" --model="$model" --mode="$mode" --threads="$threads" \
  --steps="$steps" --warmup=2
report() {
  perf report -i "$out/perf.data" --stdio --sort symbol -g none \
    --percent-limit "$min" "$@" 2>/dev/null |
    grep -v '^#' | grep -v '^$' | sed -E 's/ +- +- *$//' | cut -c1-160
}
echo
echo "== self time (% of samples, all threads) =="
report --no-children
echo
echo "== inclusive time of dive functions (children included) =="
report --children | grep -E '\] (dive::|std::_Function_handler<.*dive::)' | head -40
