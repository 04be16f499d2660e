#!/usr/bin/env bash
# bench/netns_scaling.sh: the measurements behind bench/README.md's
# "Scaling over a network": bench/netns_mpi.sh runs of ResNet-18 (2 ranks,
# 32 x 96, batch 32 per rank, 1 thread per rank) at 10 and 1 Gbit/s with
# the all-reduce overlapped, not overlapped, skipped, bf16-compressed and
# alone, the all-reduce alone of softmax, LeNet and VGG-11/4 (for the cost
# model's latency and bandwidth), and each model's single-process compute
# step (no mpirun, 1 thread). One JSON line per run, appended to --out:
#
#   {"rate":"10gbit","delay_ms":"0.5","iallreduce":"auto",
#    "load":"1.02 0.98 0.95","result":{...ddp_step's line...}}
#
#   sudo bench/netns_scaling.sh --out=/tmp/netns_scaling.jsonl --steps=20 \
#       --delay_ms=0.5
#
# --delay_ms delays every link one way (netns_mpi.sh: netem, or its NFQUEUE
# delay line), 0 by default.
#
# Needs what netns_mpi.sh needs (root, ip netns); about 10 minutes on a
# 2-core machine. Quiet the machine first: the numbers are wall-clock times.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out="" steps=20 delay_ms=0 binary="$here/../bazel-bin/bench/ddp_step"
for arg in "$@"; do
  case "$arg" in
    --out=*) out=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --delay_ms=*) delay_ms=${arg#*=} ;;
    --binary=*) binary=${arg#*=} ;;
    *) echo "usage: $0 --out=FILE [--steps=N] [--delay_ms=D] [--binary=PATH]" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || { echo "$0: --out=FILE is required" >&2; exit 2; }
[[ "$steps" =~ ^[1-9][0-9]{0,2}$ ]] || { echo "$0: --steps: 1..999" >&2; exit 2; }
[[ "$delay_ms" =~ ^(0|[1-9][0-9]{0,2})(\.[0-9]{1,3})?$ ]] ||
  { echo "$0: --delay_ms: a number of ms, e.g. 0.5" >&2; exit 2; }
[[ -x "$binary" ]] || { echo "$0: $binary: build //bench:ddp_step first" >&2; exit 2; }

record() {  # rate, algorithm, then the JSON line on stdin
  local line
  line=$(grep '^{' || true)
  [[ -n "$line" ]] || { echo "$0: a run printed no result" >&2; return 1; }
  printf '{"rate":"%s","delay_ms":"%s","iallreduce":"%s","load":"%s","result":%s}\n' \
    "$1" "$3" "$2" "$(cut -d' ' -f1-3 /proc/loadavg)" "$line" >> "$out"
  echo "$1 $line" | cut -c1-200
}

net() {  # rate, then netns_mpi.sh options
  local rate=$1 algorithm=auto arg
  shift
  for arg in "$@"; do [[ "$arg" != --iallreduce=* ]] || algorithm=${arg#*=}; done
  "$here/netns_mpi.sh" "--binary=$binary" "--rate=$rate" "--delay_ms=$delay_ms" "$@" |
    tee >(grep '^netns_mpi: \(delay:\|measured RTT\)' >&2) | record "$rate" "$algorithm" "$delay_ms"
}

# Single-process compute steps (LocalProcessGroup: no all-reduce), 1 thread.
for model in resnet vgg; do
  "$binary" "--model=$model" --threads=1 --mode=no_allreduce "--steps=$steps" |
    record local none 0
done
for rate in 10gbit 1gbit; do
  common=(--ranks=2 --model=resnet --threads=1 "--steps=$steps")
  net "$rate" "${common[@]}" --mode=no_allreduce
  net "$rate" "${common[@]}" --mode=ddp --overlap=on
  net "$rate" "${common[@]}" --mode=ddp --overlap=off
  net "$rate" "${common[@]}" --mode=ddp --overlap=on --bf16_compress=on
  net "$rate" "${common[@]}" --mode=allreduce_only
  # Open MPI picks the binomial tree below 4 ranks; the ring the cost model
  # assumes, for comparison.
  net "$rate" "${common[@]}" --mode=ddp --overlap=on --iallreduce=ring
  net "$rate" "${common[@]}" --mode=allreduce_only --iallreduce=ring
  for model in softmax lenet vgg; do
    net "$rate" --ranks=2 "--model=$model" --threads=1 --mode=allreduce_only "--steps=$steps"
    net "$rate" --ranks=2 "--model=$model" --threads=1 --mode=allreduce_only "--steps=$steps" --iallreduce=ring
  done
done
# The number of ranks in the cost model: 4 ranks, the all-reduce alone
# (little compute, so 2 cores suffice), ring and Open MPI's choice.
for model in lenet resnet; do
  for algorithm in auto ring; do
    net 1gbit --ranks=4 "--model=$model" --threads=1 --mode=allreduce_only "--steps=$steps" "--iallreduce=$algorithm"
  done
done
