#!/usr/bin/env bash
# Trains the zoo with the book's full recipes (60,000 training images, 10
# epochs, the book's lr and batch size) and prints each run's final test
# accuracy next to the book's figure.
#
#   bench/book_accuracy.sh                  # the five small models, seeds 0 1 2
#   bench/book_accuracy.sh lenet bn_lenet   # a subset
#   SEEDS="0 1 2 3 4" bench/book_accuracy.sh mlp
#   bench/book_accuracy.sh --precision=bf16 lenet bn_lenet   # mixed precision
#
# With REFERENCE=1 the PyTorch twins (bench/pytorch_train.py) run the same
# recipe after ours, for a side-by-side table.
#
#   bench/book_accuracy.sh --large          # the six large models, seed 0
#   bench/book_accuracy.sh --large resnet   # one of them
#   bench/book_accuracy.sh --table          # bench/results/book_table.csv as Markdown
#
# --large trains each at a resolution a 2-core CPU affords (RESIZE_<model>=px
# overrides it, e.g. RESIZE_alexnet=96), in float32 unless --precision says
# otherwise, one run per model in $RUNS/<model> (default bench/runs, ignored by
# git) with a checkpoint every 50 steps. A run that stopped (Ctrl-C, a killed
# shell, a reboot) continues exactly where it stopped when the script is run
# again; a finished run is only read. After each run it rewrites
# bench/results/book_table.csv (one row per finished model; wall_seconds is
# the training time of all epochs, metrics.csv's seconds summed, without the
# test evaluations) and copies the run's metrics to
# bench/results/<model>_metrics.csv. Runs take tens of minutes
# each: start it with nohup or in tmux.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

models=()
precision=fp32
large=0
print_only=0
for arg in "$@"; do
  case "$arg" in
    --precision=fp32|--precision=bf16) precision="${arg#--precision=}" ;;
    --precision=*) echo "book_accuracy.sh: $arg: fp32 or bf16" >&2; exit 2 ;;
    --large) large=1 ;;
    --table) print_only=1 ;;
    -*) echo "book_accuracy.sh: unknown flag $arg" >&2; exit 2 ;;
    *) models+=("$arg") ;;
  esac
done
threads="${THREADS:-2}"
declare -A book=([softmax]=0.83 [mlp]=0.84 [mlp_dropout]=0.85 [lenet]=0.80
                 [bn_lenet]=0.85 [alexnet]=0.88 [vgg]=0.918 [nin]=0.843
                 [googlenet]=0.89 [resnet]=0.91 [densenet]=0.89)
large_models=(alexnet vgg nin googlenet resnet densenet)
# The resolutions of --large: AlexNet and NiN just above their smallest input
# (65 and 67 px, where their last feature map is 1 x 1, as it is up to 127
# px); the rest at 32 px, where their 32x downsampling also ends at 1 x 1.
declare -A large_resize=([alexnet]=68 [vgg]=32 [nin]=68 [googlenet]=32
                         [resnet]=32 [densenet]=32)

target() {  # model name -> bazel target and extra flags
  case "$1" in
    mlp_dropout) echo "//models/mlp:train --dropout" ;;
    *) echo "//models/$1:train" ;;
  esac
}

binary() {  # bazel label -> its path under bazel-bin
  local bin="bazel-bin/${1#//}"
  echo "${bin/://}"
}

check_models() {  # every argument must be one of the list after --
  local m k known
  for m in "${models[@]}"; do
    known=0
    for k in "$@"; do [[ "$m" == "$k" ]] && known=1; done
    ((known)) || { echo "book_accuracy.sh: unknown model '$m' (one of: $*)" >&2; exit 2; }
  done
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# The last epoch number of a metrics.csv (0 when it has no rows).
last_epoch() { awk -F, 'NR > 1 {e = $1} END {print e + 0}' "$1" 2>/dev/null || echo 0; }

# One book_table.csv row per finished run of $RUNS, in the order of
# large_models; a model without a finished run here keeps its earlier row.
write_table() {
  local out=bench/results/book_table.csv m dir row
  local header="model,resolution,precision,epochs,train_images,wall_seconds,test_acc,book_acc"
  {
    echo "$header"
    for m in "${large_models[@]}"; do
      dir="$runs/$m"
      if [[ -f "$dir/book_run" && -f "$dir/metrics.csv" ]] &&
         (($(last_epoch "$dir/metrics.csv") == epochs)); then
        read -r res prec < "$dir/book_run"
        row=$(awk -F, -v m="$m" -v r="$res" -v p="$prec" -v n="$train_images" \
                  -v b="${book[$m]}" 'NR > 1 {e = $1; s += $5; a = $4}
                  END {printf "%s,%s,%s,%d,%d,%.0f,%.4f,%s\n", m, r, p, e, n, s, a, b}' \
                  "$dir/metrics.csv")
        echo "$row"
      elif [[ -f "$out" ]]; then
        grep "^$m," "$out" || true
      fi
    done
  } > "$out.tmp"
  mv -f "$out.tmp" "$out"
}

# Copies the finished run of model $1 into bench/results and rewrites the table.
publish() {
  mkdir -p bench/results
  cp "$runs/$1/metrics.csv" "bench/results/$1_metrics.csv"
  write_table
}

# Prints book_table.csv as the README's Markdown table; "quiet" is the
# fastest epoch of the run's metrics times the epochs, what a machine with
# nothing else running takes (the wall time includes whatever shared it).
print_table() {
  local m res prec epochs images wall acc book quiet
  echo "| model | resolution | precision | wall time | quiet | test acc | book |"
  echo "|---|---|---|---|---|---|---|"
  tail -n +2 bench/results/book_table.csv |
  while IFS=, read -r m res prec epochs images wall acc book; do
    quiet=$(awk -F, -v e="$epochs" 'NR > 1 && (min == "" || $5 < min) {min = $5}
                END {printf "%d", (min * e + 30) / 60}' "bench/results/${m}_metrics.csv")
    printf '| %s | %d x %d | %s | %d min | %s min | %.3f | %s |\n' \
        "$m" "$res" "$res" "$prec" $(((wall + 30) / 60)) "$quiet" "$acc" "$book"
  done
}

if ((print_only)); then
  print_table
  exit 0
fi

if ((large)); then
  ((${#models[@]})) || models=("${large_models[@]}")
  check_models "${large_models[@]}"
  runs="${RUNS:-bench/runs}"
  epochs="${EPOCHS:-10}"            # smaller only to try the script out
  train_images="${TRAIN_LIMIT:-60000}"
  bazel build $(for m in "${models[@]}"; do target "$m"; done) >&2
  mkdir -p "$runs"
  for m in "${models[@]}"; do
    dir="$runs/$m"
    mkdir -p "$dir"
    for f in book_run log.txt; do  # the trainer checks its own files
      [[ -L "$dir/$f" ]] && { echo "book_accuracy.sh: $dir/$f is a symlink; not writing through it" >&2; exit 1; }
    done
    flags=(--out="$dir" --seed=0 --threads="$threads" --progress=false
           --epochs="$epochs" --checkpoint_every=50)
    ((train_images == 60000)) || flags+=(--train_limit="$train_images")
    if [[ -f "$dir/book_run" ]]; then  # a run began here: keep its settings
      read -r res prec < "$dir/book_run"
      if (($(last_epoch "$dir/metrics.csv") == epochs)); then
        echo "$m: finished in $dir" >&2
        publish "$m"
        continue
      fi
      [[ -f "$dir/model.safetensors" ]] && flags+=(--resume) || flags+=(--overwrite)
      echo "$m: continuing in $dir ($res px, $prec)" >&2
    else
      var="RESIZE_$m"
      res="${!var:-${large_resize[$m]}}"
      prec="$precision"
      (set -C; echo "$res $prec" > "$dir/book_run")  # never replaces a file
      echo "$m: starting in $dir ($res px, $prec)" >&2
    fi
    "$(binary "$(target "$m")")" "${flags[@]}" --resize="$res" --precision="$prec" \
        >> "$dir/log.txt" 2>&1 ||
      { echo "$m: the trainer failed or was stopped; see $dir/log.txt" >&2; exit 1; }
    publish "$m"
  done
  print_table
  exit 0
fi

((${#models[@]})) || models=(softmax mlp mlp_dropout lenet bn_lenet)
check_models softmax mlp mlp_dropout lenet bn_lenet
read -r -a seeds <<< "${SEEDS:-0 1 2}"
bazel build $(for m in "${models[@]}"; do target "$m" | cut -d' ' -f1; done) >&2
echo "precision: $precision"
printf '%-12s %-28s %-8s %s\n' model "test acc per seed" median book
for m in "${models[@]}"; do
  read -r label flags <<< "$(target "$m")"
  bin="$(binary "$label")"
  accs=()
  for s in "${seeds[@]}"; do
    acc=$("$bin" $flags --seed="$s" --progress=false --threads="$threads" \
              --precision="$precision" 2>/dev/null |
          awk '/^epoch 10:/ {gsub(",", "", $10); print $10}')
    accs+=("$acc")
  done
  med=$(printf '%s\n' "${accs[@]}" | median)
  printf '%-12s %-28s %-8s %s\n' "$m" "${accs[*]}" "$med" "${book[$m]:-?}"
  if [[ "${REFERENCE:-0}" == 1 ]]; then
    taccs=()
    for s in "${seeds[@]}"; do
      taccs+=("$(/usr/bin/python3 -m bench.pytorch_train --model="$m" --seed="$s" \
                 --threads="$threads" 2>/dev/null | awk '/^epoch 10:/ {gsub(",", "", $10); print $10}')")
    done
    printf '%-12s %-28s %-8s\n' "  pytorch" "${taccs[*]}" "$(printf '%s\n' "${taccs[@]}" | median)"
  fi
done
