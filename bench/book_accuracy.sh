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
#   bench/book_accuracy.sh --book_resolution densenet   # at the book's 96 px
#   bench/book_accuracy.sh --table          # bench/results/book_table.csv as Markdown
#
# --large trains each at a resolution a 2-core CPU affords (RESIZE_<model>=px
# overrides it, e.g. RESIZE_alexnet=96), in float32 unless --precision says
# otherwise, one run per model in $RUNS/<model> (default bench/runs, ignored by
# git) with a checkpoint every 50 steps. --book_resolution (implies --large)
# trains at the book's own resolutions instead (224 px for AlexNet, VGG and
# NiN, 96 px for the others), in bf16 where the CPU has bf16 instructions
# (AVX512-BF16 or AMX; --precision overrides it), in $RUNS/<model>_<px>px.
# A run that stopped (Ctrl-C, a killed shell, a reboot) continues from its
# last checkpoint when the script is run again, and a run that stopped before
# its first checkpoint says that it restarts from zero; a finished run is only
# read. After each run it rewrites bench/results/book_table.csv (one row per
# finished model and resolution; wall_seconds is the training time of all
# epochs, metrics.csv's seconds summed, without the test evaluations; cpu is
# the CPU and kernel path the trainer printed) and copies the run's metrics
# to bench/results/<model>[_<px>px]_metrics.csv. Runs take tens of minutes to
# hours each: start it with nohup or in tmux.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

models=()
precision=
large=0
book_resolution=0
print_only=0
for arg in "$@"; do
  case "$arg" in
    --precision=fp32|--precision=bf16) precision="${arg#--precision=}" ;;
    --precision=*) echo "book_accuracy.sh: $arg: fp32 or bf16" >&2; exit 2 ;;
    --large) large=1 ;;
    --book_resolution) large=1; book_resolution=1 ;;
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
# The book's own resolutions (d2l 8.1-8.7).
declare -A book_resize=([alexnet]=224 [vgg]=224 [nin]=224 [googlenet]=96
                        [resnet]=96 [densenet]=96)
if [[ -z "$precision" ]]; then
  precision=fp32
  if ((book_resolution)) && grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
    precision=bf16
  fi
fi

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

# The run directory under $RUNS, and the results' file stem, of model $1:
# <model> at the reduced resolution, <model>_<px>px at the book's.
run_name() {
  if ((book_resolution)); then echo "$1_${book_resize[$1]}px"; else echo "$1"; fi
}

# "CPU name (kernel path)" from a run's log (the trainer's "cpu: NAME;
# FEATURES; kernels: PATH" line), without commas for the CSV.
run_cpu() {
  sed -n 's/.*\] cpu: \([^;]*\);.*kernels: \([a-z0-9_]*\).*/\1 (\2)/p' "$1" |
    head -n 1 | tr -d ','
}

# One book_table.csv row per finished run of $RUNS, in the order of
# large_models, the reduced resolution before the book's; a run not finished
# here keeps its earlier row (matched by model and resolution).
write_table() {
  local out=bench/results/book_table.csv m dir name res prec
  local header="model,resolution,precision,epochs,train_images,wall_seconds,test_acc,book_acc,cpu"
  {
    echo "$header"
    for m in "${large_models[@]}"; do
      for name in "$m" "${m}_${book_resize[$m]}px"; do
        dir="$runs/$name"
        if [[ -f "$dir/book_run" && -f "$dir/metrics.csv" ]] &&
           (($(last_epoch "$dir/metrics.csv") == epochs)); then
          read -r res prec < "$dir/book_run"
          awk -F, -v m="$m" -v r="$res" -v p="$prec" -v n="$train_images" \
              -v b="${book[$m]}" -v c="$(run_cpu "$dir/log.txt")" \
              'NR > 1 {e = $1; s += $5; a = $4}
              END {printf "%s,%s,%s,%d,%d,%.0f,%.4f,%s,%s\n", m, r, p, e, n, s, a, b, c}' \
              "$dir/metrics.csv"
        elif [[ -f "$out" ]]; then
          res="${large_resize[$m]}"
          [[ "$name" == "$m" ]] || res="${book_resize[$m]}"
          # Rows from before the cpu column get an empty one.
          awk -F, -v m="$m" -v r="$res" '$1 == m && $2 == r {
              print (NF == 8) ? $0 "," : $0}' "$out"
        fi
      done
    done
  } > "$out.tmp"
  mv -f "$out.tmp" "$out"
}

# Copies the finished run $1 (a run_name) into bench/results and rewrites the
# table.
publish() {
  mkdir -p bench/results
  cp "$runs/$1/metrics.csv" "bench/results/$1_metrics.csv"
  write_table
}

# Prints book_table.csv as the README's Markdown table; "quiet" is the
# fastest epoch of the run's metrics times the epochs, what a machine with
# nothing else running takes (the wall time includes whatever shared it).
print_table() {
  local m res prec epochs images wall acc book cpu quiet metrics
  echo "| model | resolution | precision | wall time | quiet | test acc | book | CPU (kernels) |"
  echo "|---|---|---|---|---|---|---|---|"
  tail -n +2 bench/results/book_table.csv |
  while IFS=, read -r m res prec epochs images wall acc book cpu; do
    metrics="bench/results/${m}_metrics.csv"
    ((res == ${book_resize[$m]})) && metrics="bench/results/${m}_${res}px_metrics.csv"
    quiet=$(awk -F, -v e="$epochs" 'NR > 1 && (min == "" || $5 < min) {min = $5}
                END {printf "%d", (min * e + 30) / 60}' "$metrics")
    printf '| %s | %d x %d | %s | %d min | %s min | %.3f | %s | %s |\n' \
        "$m" "$res" "$res" "$prec" $(((wall + 30) / 60)) "$quiet" "$acc" "$book" "${cpu:--}"
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
    name=$(run_name "$m")
    dir="$runs/$name"
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
        publish "$name"
        continue
      fi
      if [[ -f "$dir/model.safetensors" ]]; then
        flags+=(--resume)
        echo "$m: continuing in $dir ($res px, $prec) from its last checkpoint;" \
             "$(last_epoch "$dir/metrics.csv") of $epochs epochs were done" >&2
      else
        flags+=(--overwrite)
        echo "$m: RESTARTING FROM ZERO in $dir ($res px, $prec): the run" \
             "stopped before its first checkpoint" >&2
      fi
    else
      if ((book_resolution)); then
        res="${book_resize[$m]}"
      else
        var="RESIZE_$m"
        res="${!var:-${large_resize[$m]}}"
      fi
      prec="$precision"
      (set -C; echo "$res $prec" > "$dir/book_run")  # never replaces a file
      echo "$m: starting in $dir ($res px, $prec)" >&2
    fi
    "$(binary "$(target "$m")")" "${flags[@]}" --resize="$res" --precision="$prec" \
        >> "$dir/log.txt" 2>&1 ||
      { echo "$m: the trainer failed or was stopped; see $dir/log.txt" >&2; exit 1; }
    publish "$name"
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
