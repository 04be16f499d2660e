#!/usr/bin/env bash
# bench/ddp_accuracy.sh: what data-parallel training's options do to
# accuracy, measured on Fashion-MNIST (issue 36's accuracy criteria):
#
#   syncbn    BN-LeNet at its recipe (10 epochs, global batch 256), for each
#             seed: one process (2 threads), and 2 ranks x 128 with
#             --sync_batchnorm (1 thread each).
#   compress  ResNet-18, one epoch at --resize=32 (book_table.csv's
#             resolution for ResNet), 2 ranks: gradients all-reduced in
#             float32, and with --ddp_bf16_compress.
#
#   bench/ddp_accuracy.sh [--seeds=1,2,3] [--only=syncbn|compress]
#       [--out=bench/results/ddp_accuracy.csv]
#
# Each run trains into a fresh directory under a private temporary
# directory (removed at exit) and reads its last metrics.csv row; one CSV
# row per run is appended to --out (created with its header if missing),
# then a Markdown table of each configuration's accuracies (seed in
# parentheses), median and mean is printed. Needs the trainers built
# (bazel build -c opt //models/bn_lenet:train //models/resnet:train),
# mpirun (openmpi-bin) and Fashion-MNIST; runs as root pass
# --allow-run-as-root to mpirun. About 10 minutes on a 2-core machine.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
seeds=1,2,3 only=all out="$root/bench/results/ddp_accuracy.csv"
for arg in "$@"; do
  case "$arg" in
    --seeds=*) seeds=${arg#*=} ;;
    --only=*) only=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    *) echo "usage: $0 [--seeds=1,2,3] [--only=syncbn|compress] [--out=FILE]" >&2; exit 2 ;;
  esac
done
[[ "$seeds" =~ ^[0-9]{1,9}(,[0-9]{1,9}){0,9}$ ]] ||
  { echo "$0: --seeds: up to 10 comma-separated integers" >&2; exit 2; }
[[ "$only" =~ ^(all|syncbn|compress)$ ]] ||
  { echo "$0: --only: syncbn or compress" >&2; exit 2; }
[[ -n "$out" && ! -d "$out" ]] || { echo "$0: --out: a file path" >&2; exit 2; }
# Rows are appended: never through a symlink someone planted.
[[ ! -L "$out" ]] || { echo "$0: --out=$out: is a symbolic link; refusing to write through it" >&2; exit 2; }

bin="$root/bazel-bin/models"
for model in bn_lenet resnet; do
  [[ -x "$bin/$model/train" ]] ||
    { echo "$0: build it first: bazel build -c opt //models/$model:train" >&2; exit 2; }
done
command -v mpirun >/dev/null || { echo "$0: mpirun not found (openmpi-bin)" >&2; exit 2; }
mpi=(mpirun -np 2 --bind-to none)
[[ $(id -u) != 0 ]] || mpi+=(--allow-run-as-root)

work=$(mktemp -d "${TMPDIR:-/tmp}/ddp_accuracy.XXXXXX")
trap 'rm -rf "$work"' EXIT
[[ -e "$out" ]] || echo "experiment,config,seed,epochs,test_acc,wall_seconds,cpu" > "$out"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/,/;/g')

# run EXPERIMENT CONFIG SEED COMMAND...: trains into a fresh --out directory
# and records its last epoch.
run() {
  local experiment=$1 config=$2 seed=$3 dir start end
  shift 3
  dir="$work/$experiment-$config-$seed"
  start=$(date +%s)
  "$@" "--seed=$seed" "--out=$dir" --progress=false > "$dir.log" 2>&1 ||
    { echo "$0: $experiment $config seed $seed failed; its log:" >&2; tail -20 "$dir.log" >&2; exit 1; }
  end=$(date +%s)
  local last
  last=$(tail -n 1 "$dir/metrics.csv")
  IFS=, read -r epoch _ _ acc _ <<<"$last"
  echo "$experiment,$config,$seed,$epoch,$acc,$((end - start)),$cpu" | tee -a "$out"
}

IFS=, read -r -a seed_list <<<"$seeds"
for seed in "${seed_list[@]}"; do
  if [[ "$only" != compress ]]; then
    run syncbn one_process "$seed" "$bin/bn_lenet/train" --threads=2
    run syncbn 2_ranks_syncbn "$seed" "${mpi[@]}" "$bin/bn_lenet/train" --threads=1 --sync_batchnorm
  fi
  if [[ "$only" != syncbn ]]; then
    resnet=("$bin/resnet/train" --threads=1 --epochs=1 --resize=32)
    run compress 2_ranks_fp32 "$seed" "${mpi[@]}" "${resnet[@]}"
    run compress 2_ranks_bf16_compress "$seed" "${mpi[@]}" "${resnet[@]}" --ddp_bf16_compress
  fi
done

echo
# Per configuration: the runs' test accuracies, their median and mean.
python3 - "$out" <<'EOF'
import csv, statistics, sys
runs = {}
with open(sys.argv[1]) as f:
    for row in csv.DictReader(f):
        runs.setdefault((row["experiment"], row["config"]), []).append(
            (row["seed"], float(row["test_acc"])))
print("| experiment | configuration | test accuracy per seed | median | mean |")
print("|---|---|---|---:|---:|")
for (experiment, config), rs in sorted(runs.items()):
    accs = [a for _, a in rs]
    print(f"| {experiment} | {config} | "
          + ", ".join(f"{a:.4f} ({s})" for s, a in rs)
          + f" | {statistics.median(accs):.4f} | {statistics.mean(accs):.4f} |")
EOF
