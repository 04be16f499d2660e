#!/usr/bin/env bash
# Builds and runs the libFuzzer targets with clang (AddressSanitizer +
# UndefinedBehaviorSanitizer), outside Bazel, whose toolchain here is gcc.
#
#   tools/fuzz.sh safetensors 30   fuzz the safetensors parser for 30 s
#   tools/fuzz.sh idx 30           fuzz the IDX reader for 30 s
#   tools/fuzz.sh all 20           both, 20 s each
#
# The sources are those of the Bazel test target of the same name
# (//tensor:safetensors_fuzzer, //datasets:idx_fuzzer), which `bazel test`
# builds and replays over the seed corpus; here they are linked against
# libFuzzer instead of tensor/fuzz_replay_main.cc.
#
# Starts from the checked-in seed corpus (tensor/testdata/safetensors_corpus,
# datasets/testdata/idx_corpus); new inputs go to a temporary copy. Exits
# non-zero when a target crashes, leaking the crashing input to
# $FUZZ_OUT (default /tmp/dive-fuzz).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${1:-all}"
seconds="${2:-20}"
out="${FUZZ_OUT:-/tmp/dive-fuzz}"
mkdir -p "$out"

CXX="${CXX_FUZZ:-clang++}"
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -isystem /usr/include/eigen3
       -Wno-deprecated-declarations)
ABSL_LIBS=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format)

# The workspace's .cc files that TARGET links, but not the replay main.
sources_of() {  # TARGET
  bazel query --output=label "kind('source file', deps($1))" 2>/dev/null |
    sed -n 's|^//\([^:]*\):\(.*\.cc\)$|\1/\2|p' |
    grep -v '^tensor/fuzz_replay_main\.cc$'
}

build() {  # NAME TARGET
  local name="$1" srcs
  srcs=$(sources_of "$2")
  [[ -n "$srcs" ]] || { echo "fuzz.sh: no sources for $2" >&2; return 1; }
  # shellcheck disable=SC2086  # one word per source path (no spaces)
  "$CXX" "${FLAGS[@]}" $srcs -fopenmp=libgomp -o "$out/$name" $ABSL_LIBS \
      -lglog -lz
}

run() {  # NAME CORPUS
  local name="$1" corpus="$2" work="$out/$1_corpus"
  rm -rf "$work" && mkdir -p "$work" && cp "$corpus"/* "$work"/
  echo "fuzzing $name for ${seconds}s" >&2
  "$out/$name" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix="$out/$name-" -print_final_stats=1 \
      "$work" 2> "$out/$name.log" || { tail -40 "$out/$name.log" >&2; return 1; }
  grep -E "stat::number_of_executed_units|Done" "$out/$name.log" >&2 || true
}

case "$target" in
  safetensors|all)
    build safetensors_fuzzer //tensor:safetensors_fuzzer
    run safetensors_fuzzer tensor/testdata/safetensors_corpus ;;&
  idx|all)
    build idx_fuzzer //datasets:idx_fuzzer
    run idx_fuzzer datasets/testdata/idx_corpus ;;
  safetensors) ;;
  *) echo "fuzz.sh: unknown target $target (safetensors, idx, all)" >&2; exit 2 ;;
esac
