#!/usr/bin/env bash
# Trains the small models of the zoo with the book's full recipe (60,000
# training images, 10 epochs) for several seeds and prints each run's final
# test accuracy and the median per model, next to the book's figure.
#
#   bench/book_accuracy.sh                  # all five, seeds 0 1 2
#   bench/book_accuracy.sh lenet bn_lenet   # a subset
#   SEEDS="0 1 2 3 4" bench/book_accuracy.sh mlp
#   bench/book_accuracy.sh --precision=bf16 lenet bn_lenet   # mixed precision
#
# With REFERENCE=1 the PyTorch twins (bench/pytorch_train.py) run the same
# recipe after ours, for a side-by-side table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

models=()
precision=fp32
for arg in "$@"; do
  case "$arg" in
    --precision=fp32|--precision=bf16) precision="${arg#--precision=}" ;;
    --precision=*) echo "book_accuracy.sh: $arg: fp32 or bf16" >&2; exit 2 ;;
    -*) echo "book_accuracy.sh: unknown flag $arg" >&2; exit 2 ;;
    *) models+=("$arg") ;;
  esac
done
((${#models[@]})) || models=(softmax mlp mlp_dropout lenet bn_lenet)
read -r -a seeds <<< "${SEEDS:-0 1 2}"
declare -A book=([softmax]=0.83 [mlp]=0.84 [mlp_dropout]=0.85 [lenet]=0.80 [bn_lenet]=0.85)

target() {  # model name -> bazel target and extra flags
  case "$1" in
    mlp_dropout) echo "//models/mlp:train --dropout" ;;
    *) echo "//models/$1:train" ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

bazel build $(for m in "${models[@]}"; do target "$m" | cut -d' ' -f1; done) >&2
echo "precision: $precision"
printf '%-12s %-28s %-8s %s\n' model "test acc per seed" median book
for m in "${models[@]}"; do
  read -r label flags <<< "$(target "$m")"
  bin="bazel-bin/${label#//}"; bin="${bin/://}"
  accs=()
  for s in "${seeds[@]}"; do
    acc=$("$bin" $flags --seed="$s" --progress=false --threads="${THREADS:-2}" \
              --precision="$precision" 2>/dev/null |
          awk '/^epoch 10:/ {gsub(",", "", $10); print $10}')
    accs+=("$acc")
  done
  med=$(printf '%s\n' "${accs[@]}" | median)
  printf '%-12s %-28s %-8s %s\n' "$m" "${accs[*]}" "$med" "${book[$m]:-?}"
  if [[ "${REFERENCE:-0}" == 1 ]]; then
    taccs=()
    for s in "${seeds[@]}"; do
      taccs+=("$(/usr/bin/python3 bench/pytorch_train.py --model="$m" --seed="$s" \
                 --threads="${THREADS:-2}" 2>/dev/null | awk '/^epoch 10:/ {gsub(",", "", $10); print $10}')")
    done
    printf '%-12s %-28s %-8s\n' "  pytorch" "${taccs[*]}" "$(printf '%s\n' "${taccs[@]}" | median)"
  fi
done
