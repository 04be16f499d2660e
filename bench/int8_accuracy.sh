#!/usr/bin/env bash
# Post-training int8 against float32, model by model: takes a float32
# checkpoint trained with the book's recipe (or trains one), quantizes it with
# //tools:quantize twice (--calibration=minmax and percentile, 8 calibration
# batches of 256 training images), evaluates the float32 checkpoint and both
# int8 ones on the 10,000 test images with //tools:eval, and writes the
# accuracies to bench/results/int8_accuracy.csv (issue 37: int8 within 1
# point of float32).
#
#   bench/int8_accuracy.sh                   # softmax mlp lenet bn_lenet
#   bench/int8_accuracy.sh lenet bn_lenet    # a subset (any zoo model)
#   EPOCHS=3 bench/int8_accuracy.sh lenet    # a shorter run, recorded
#   CHECKPOINT_densenet=/work/runs/densenet_96px/model.safetensors \
#       bench/int8_accuracy.sh densenet      # an existing checkpoint
#   bench/int8_accuracy.sh --table           # the CSV as Markdown
#
# The float32 checkpoint of a model is, first found first:
#   - CHECKPOINT_<model>=FILE (or a run directory holding model.safetensors);
#     copied into the work directory first, so a trainer still writing it
#     cannot change it between the three evaluations. Its epochs are its
#     global_step over the steps per epoch of the train_state.safetensors
#     beside it (a fraction, and a note, for a checkpoint from inside an
#     epoch), its training precision and images that file's settings; where
#     it is missing, metrics.csv's last epoch, and what book_run, int8_run or
#     the trainer's log.txt there say ("?" if nothing does);
#   - for alexnet ... densenet, a finished bench/book_accuracy.sh run of
#     $RUNS/<model> (or $RUNS/<model>_<px>px with --book_resolution) with
#     EPOCHS epochs;
#   - else the model's trainer trains one with the book's recipe (seed 0) in
#     $RUNS/int8_<model> (int8_<model>_<px>px for the large ones), continuing
#     a stopped run from its last checkpoint when the script is run again and
#     only reading a finished one.
# The quantized checkpoints and the tools' logs go in that work directory
# too; nothing is written beside a CHECKPOINT_<model>.
#
# Settings (environment): RUNS (default bench/runs, ignored by git), THREADS
# (default 2, every tool), EPOCHS (default 10, the book's; fewer for a
# shorter run, recorded in the CSV), TRAIN_LIMIT (training images, default
# all 60,000; recorded), TEST_LIMIT (test images of every evaluation, default
# all), RESIZE_<model> (the large models' resolution; default
# bench/book_accuracy.sh --large's, or with --book_resolution the book's),
# DATA_DIR (the Fashion-MNIST directory; default the tools'), BIN (a
# directory laid out like bazel-bin that holds the binaries already built:
# no `bazel build`; the test uses it), RESULTS (default bench/results);
# relative paths in them are relative to the repository's root, where the
# script runs.
# --precision=fp32|bf16 is the precision of the training the script does
# itself (default fp32). The CSV keeps one row per model and resolution,
# the newest run's; its cpu column is the CPU and the kernel paths that
# //tools:eval printed (float32's and int8's). Runs take minutes (the small
# models) to hours (the large ones at the book's resolutions): start it with
# nohup or in tmux.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

models=()
precision=fp32
book_resolution=0
print_only=0
for arg in "$@"; do
  case "$arg" in
    --precision=fp32|--precision=bf16) precision="${arg#--precision=}" ;;
    --precision=*) echo "int8_accuracy.sh: $arg: fp32 or bf16" >&2; exit 2 ;;
    --book_resolution) book_resolution=1 ;;
    --table) print_only=1 ;;
    -*) echo "int8_accuracy.sh: unknown flag $arg" >&2; exit 2 ;;
    *) models+=("$arg") ;;
  esac
done

zoo=(softmax mlp mlp_dropout lenet bn_lenet alexnet vgg nin googlenet resnet
     densenet)
small_models=(softmax mlp mlp_dropout lenet bn_lenet)
# As bench/book_accuracy.sh: --large's resolutions, and the book's own.
declare -A large_resize=([alexnet]=68 [vgg]=32 [nin]=68 [googlenet]=32
                         [resnet]=32 [densenet]=32)
declare -A book_resize=([alexnet]=224 [vgg]=224 [nin]=224 [googlenet]=96
                        [resnet]=96 [densenet]=96)
results="${RESULTS:-bench/results}"
csv="$results/int8_accuracy.csv"
header="model,resolution,epochs,train_images,test_images,checkpoint_precision,fp32_acc,int8_minmax_acc,int8_percentile_acc,delta,cpu"

positive_int() {  # NAME VALUE: VALUE must be a whole number >= 1
  [[ "$2" =~ ^[1-9][0-9]*$ ]] ||
    { echo "int8_accuracy.sh: $1=$2: must be a whole number >= 1" >&2; exit 2; }
}

# Refuses to write through a symlink (a file planted in place of an output).
no_symlink() {
  local f
  for f in "$@"; do
    [[ -L "$f" ]] && { echo "int8_accuracy.sh: $f is a symlink; not writing through it" >&2; exit 1; }
  done
  return 0
}

# Prints int8_accuracy.csv as the README's Markdown table; delta is the worse
# of the two int8 accuracies minus float32's, in points.
print_table() {
  [[ -f "$csv" ]] || { echo "int8_accuracy.sh: no $csv yet" >&2; exit 1; }
  echo "| model | resolution | epochs | trained in | float32 | int8 minmax | int8 percentile | worst int8 - float32 | CPU (kernels) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  tail -n +2 "$csv" |
  while IFS=, read -r m res epochs images tests prec fp mm pc delta cpu; do
    note=()
    [[ "$images" == 60000 ]] || note+=("$images images")
    [[ "$tests" == 10000 ]] || note+=("$tests test images")
    if ((${#note[@]} == 2)); then epochs="$epochs (${note[0]}; ${note[1]})"
    elif ((${#note[@]} == 1)); then epochs="$epochs (${note[0]})"
    fi
    printf '| %s | %d x %d | %s | %s | %s | %s | %s | %+.2f points | %s |\n' \
        "$m" "$res" "$res" "$epochs" "$prec" "$fp" "$mm" "$pc" \
        "$(awk -v d="$delta" 'BEGIN {print d * 100}')" "${cpu:--}"
  done
}

if ((print_only)); then
  print_table
  exit 0
fi

((${#models[@]})) || models=(softmax mlp lenet bn_lenet)
for m in "${models[@]}"; do
  known=0
  for k in "${zoo[@]}"; do [[ "$m" == "$k" ]] && known=1; done
  ((known)) || { echo "int8_accuracy.sh: unknown model '$m' (one of: ${zoo[*]})" >&2; exit 2; }
done
threads="${THREADS:-2}"
epochs="${EPOCHS:-10}"
train_images="${TRAIN_LIMIT:-60000}"
positive_int THREADS "$threads"
positive_int EPOCHS "$epochs"
positive_int TRAIN_LIMIT "$train_images"
[[ -z "${TEST_LIMIT:-}" ]] || positive_int TEST_LIMIT "$TEST_LIMIT"
runs="${RUNS:-bench/runs}"
data_flags=()
[[ -z "${DATA_DIR:-}" ]] || data_flags=(--data_dir="$DATA_DIR")
eval_flags=(--threads="$threads" "${data_flags[@]}")
[[ -z "${TEST_LIMIT:-}" ]] || eval_flags+=(--limit="$TEST_LIMIT")

is_small() {
  local k
  for k in "${small_models[@]}"; do [[ "$1" == "$k" ]] && return 0; done
  return 1
}

target() {  # model name -> bazel target and extra flags
  case "$1" in
    mlp_dropout) echo "//models/mlp:train --dropout" ;;
    *) echo "//models/$1:train" ;;
  esac
}

bin_dir="${BIN:-bazel-bin}"
binary() {  # bazel label -> its path under $bin_dir
  local bin="$bin_dir/${1#//}"
  echo "${bin/://}"
}

# The last epoch number of a metrics.csv (0 when it has no rows).
last_epoch() { awk -F, 'NR > 1 {e = $1} END {print e + 0}' "$1" 2>/dev/null || echo 0; }

# The training precision a run directory records: its book_run or int8_run
# file, else the trainer's recipe line in its log.txt ("..., threads 2,
# bf16, sgd, ..."; float32 runs name no precision there), else "?".
run_precision() {
  local dir="$1" f res prec rest line
  for f in book_run int8_run; do
    if [[ -f "$dir/$f" ]]; then
      read -r res prec rest < "$dir/$f"
      echo "$prec"
      return
    fi
  done
  line=$(grep -E '\] .*, threads [0-9]+, ' "$dir/log.txt" 2>/dev/null | tail -n 1)
  if [[ -z "$line" ]]; then echo "?"
  elif [[ "$line" =~ ,\ threads\ [0-9]+,\ bf16, ]]; then echo bf16
  else echo fp32
  fi
}

# The training images of a run directory: its int8_run's, 60000 for a
# bench/book_accuracy.sh run (book_run; its TRAIN_LIMIT is only for trying
# the script out), else "?" (the trainer's log does not name them).
run_images() {
  local images
  if [[ -f "$1/int8_run" ]]; then
    read -r _ _ _ images < "$1/int8_run"  # px precision epochs images
    echo "${images:-?}"
  elif [[ -f "$1/book_run" ]]; then
    echo 60000
  else
    echo "?"
  fi
}

# A value of a safetensors file's metadata (its JSON header's
# "__metadata__"), or nothing.
safetensors_meta() {  # FILE KEY
  local n
  n=$(od -An -t u8 -N 8 "$1" 2>/dev/null | tr -d ' ')
  [[ "$n" =~ ^[0-9]+$ ]] && ((n < 100000000)) || return 0
  head -c $((8 + n)) "$1" | tail -c "$n" |
    grep -o "\"$2\": *\"[^\"]*\"" | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/' || true
}

# "CPU (fp32: PATH; int8: PATH)" from //tools:eval's logs, without commas.
eval_cpu() {  # FP32_LOG INT8_LOG
  local name fp int8
  name=$(sed -n 's/.*\] cpu: \([^;]*\);.*/\1/p' "$1" | head -n 1)
  fp=$(sed -n 's/.*\] cpu: .*kernels: \([a-z0-9_]*\).*/\1/p' "$1" | head -n 1)
  int8=$(sed -n 's/.*\] int8 kernels: \([a-z0-9_]*\).*/\1/p' "$2" | head -n 1)
  echo "$name (fp32: $fp; int8: $int8)" | tr -d ','
}

# The test accuracy //tools:eval printed ("M on PATH: test acc 0.8123").
eval_acc() { sed -n 's/.* test acc \([0-9.]*\)$/\1/p' "$1" | tail -n 1; }

# The test images //tools:eval evaluated: the sum of its confusion matrix
# (a header of one column per class, then per class its name, which may
# hold a space, its number and a count per class).
eval_images() {
  awk '/^confusion matrix/ {getline; c = NF; on = 1; next}
       on && NF > c {for (i = NF - c + 1; i <= NF; i++) n += $i}
       END {print n + 0}' "$1"
}

# Replaces the CSV's row of the model and resolution of row $1 (or adds it),
# rows in zoo order, then resolution.
update_csv() {
  local row="$1" key
  key=$(cut -d, -f1,2 <<< "$row")
  mkdir -p "$results"
  no_symlink "$csv" "$csv.tmp"
  {
    echo "$header"
    {
      [[ -f "$csv" ]] && tail -n +2 "$csv" | awk -F, -v k="$key" '$1 "," $2 != k'
      echo "$row"
    } | awk -F, -v order="${zoo[*]}" '
        BEGIN {n = split(order, o, " "); for (i = 1; i <= n; i++) rank[o[i]] = i}
        {printf "%02d %06d %s\n", rank[$1], $2, $0}' |
      sort -k1,1n -k2,2n | cut -d' ' -f3-
  } > "$csv.tmp"
  mv -f "$csv.tmp" "$csv"
}

if [[ -z "${BIN:-}" ]]; then
  targets=(//tools:quantize //tools:eval)
  for m in "${models[@]}"; do targets+=("$(target "$m" | cut -d' ' -f1)"); done
  bazel build -c opt "${targets[@]}" >&2
fi
quantize="$(binary //tools:quantize)"
eval_bin="$(binary //tools:eval)"
mkdir -p "$runs"

for m in "${models[@]}"; do
  if is_small "$m"; then
    res=28
  elif ((book_resolution)); then
    res="${book_resize[$m]}"
  else
    var="RESIZE_$m"
    res="${!var:-${large_resize[$m]}}"
    positive_int "$var" "$res"
  fi
  name="int8_$m"
  is_small "$m" || name="int8_${m}_${res}px"
  dir="$runs/$name"
  var="CHECKPOINT_$m"
  given="${!var:-}"
  mkdir -p "$dir"
  no_symlink "$dir"/{int8_run,log.txt,checkpoint.safetensors{,.tmp}} \
             "$dir"/{quantize_minmax,quantize_percentile,eval_fp32}.txt \
             "$dir"/eval_int8_{minmax,percentile}.txt
  if [[ -n "$given" ]]; then
    [[ -d "$given" ]] && given="$given/model.safetensors"
    [[ -f "$given" ]] || { echo "int8_accuracy.sh: $var=$given: no such file" >&2; exit 2; }
    src_dir="$(dirname "$given")"
    cp -f "$given" "$dir/checkpoint.safetensors.tmp"
    mv -f "$dir/checkpoint.safetensors.tmp" "$dir/checkpoint.safetensors"
    checkpoint="$dir/checkpoint.safetensors"
    # The run's settings from its train_state.safetensors (they stay the same
    # through a run), its progress from the copied weights' own metadata;
    # else what metrics.csv, book_run, int8_run and log.txt beside it say.
    state="$src_dir/train_state.safetensors"
    [[ -f "$state" ]] || state=/dev/null
    step=$(safetensors_meta "$checkpoint" global_step)
    per_epoch=$(safetensors_meta "$state" steps_per_epoch)
    if [[ "$step" =~ ^[0-9]+$ && "$per_epoch" =~ ^[1-9][0-9]*$ ]]; then
      run_epochs=$(awk -v s="$step" -v p="$per_epoch" \
                   'BEGIN {e = s / p; printf (e == int(e)) ? "%d" : "%.2f", e}')
      ((step % per_epoch == 0)) ||
        echo "$m: note: the checkpoint is from inside epoch $((step / per_epoch + 1))" \
             "(step $step, $per_epoch steps an epoch): of a run stopped or still" \
             "running; its epochs are recorded as $run_epochs" >&2
    else
      run_epochs=$(last_epoch "$src_dir/metrics.csv")
      ((run_epochs > 0)) || run_epochs="?"
    fi
    prec=$(safetensors_meta "$state" setting.precision)
    [[ "$prec" =~ ^(fp32|bf16)$ ]] || prec=$(run_precision "$src_dir")
    run_images=$(safetensors_meta "$state" setting.train_limit)
    if [[ "$run_images" == 0 ]]; then run_images=60000
    elif [[ ! "$run_images" =~ ^[1-9][0-9]*$ ]]; then run_images=$(run_images "$src_dir")
    fi
    if [[ -f "$src_dir/.lock" ]]; then  # the trainer's lock holds its pid
      pid=$(head -n 1 "$src_dir/.lock" 2>/dev/null || true)
      if [[ "$pid" =~ ^[1-9][0-9]*$ ]] && kill -0 "$pid" 2>/dev/null; then
        echo "$m: note: process $pid (a trainer?) holds $src_dir/.lock: the run" \
             "may be in progress" >&2
      fi
    fi
    echo "$m: the checkpoint $given ($run_epochs epochs, trained in $prec)" >&2
  else
    book_dir="$runs/$m"
    ((book_resolution)) && book_dir="$runs/${m}_${res}px"
    if ! is_small "$m" && [[ -f "$book_dir/book_run" ]] &&
       (($(last_epoch "$book_dir/metrics.csv") == epochs)) &&
       [[ "$(cut -d' ' -f1 "$book_dir/book_run")" == "$res" ]]; then
      checkpoint="$book_dir/model.safetensors"
      prec=$(run_precision "$book_dir")
      run_epochs="$epochs"
      run_images="$train_images"
      echo "$m: bench/book_accuracy.sh's finished run in $book_dir" >&2
    else
      read -r label extra <<< "$(target "$m")"
      flags=(--out="$dir" --seed=0 --threads="$threads" --progress=false
             --epochs="$epochs" --checkpoint_every=50 --precision="$precision"
             "${data_flags[@]}")
      is_small "$m" || flags+=(--resize="$res")
      ((train_images == 60000)) || flags+=(--train_limit="$train_images")
      [[ -z "${TEST_LIMIT:-}" ]] || flags+=(--test_limit="$TEST_LIMIT")
      settings="$res $precision $epochs $train_images"
      if [[ -f "$dir/int8_run" ]]; then  # a run began here: same settings?
        if [[ "$(cat "$dir/int8_run")" != "$settings" ]]; then
          echo "int8_accuracy.sh: $dir holds a run of other settings" \
               "(px precision epochs images: $(cat "$dir/int8_run"), not" \
               "$settings); remove it or set RUNS" >&2
          exit 1
        fi
      else
        (set -C; echo "$settings" > "$dir/int8_run")  # never replaces a file
      fi
      if (($(last_epoch "$dir/metrics.csv") == epochs)) &&
         [[ -f "$dir/model.safetensors" ]]; then
        echo "$m: finished in $dir" >&2
      else
        if [[ -f "$dir/model.safetensors" ]]; then
          flags+=(--resume)
          echo "$m: continuing in $dir from its last checkpoint;" \
               "$(last_epoch "$dir/metrics.csv") of $epochs epochs were done" >&2
        else
          flags+=(--overwrite)
          echo "$m: training in $dir ($res px, $precision, $epochs epochs)" >&2
        fi
        # shellcheck disable=SC2086  # $extra: the trainer's own flags
        "$(binary "$label")" $extra "${flags[@]}" >> "$dir/log.txt" 2>&1 ||
          { echo "$m: the trainer failed or was stopped; see $dir/log.txt" >&2; exit 1; }
      fi
      checkpoint="$dir/model.safetensors"
      prec="$precision"
      run_epochs="$epochs"
      run_images="$train_images"
    fi
  fi

  for cal in minmax percentile; do
    "$quantize" --checkpoint="$checkpoint" --out="$dir/int8_$cal.safetensors" \
        --calibration="$cal" --calibration_batches=8 --batch_size=256 \
        --threads="$threads" "${data_flags[@]}" > "$dir/quantize_$cal.txt" 2>&1 ||
      { echo "$m: //tools:quantize failed; see $dir/quantize_$cal.txt" >&2; exit 1; }
  done
  # The resolution the model was quantized (and trained) at.
  res=$(sed -n 's/^wrote .* at \([0-9]*\) x [0-9]*, .*/\1/p' "$dir/quantize_minmax.txt" | tail -n 1)
  "$eval_bin" --checkpoint="$checkpoint" "${eval_flags[@]}" > "$dir/eval_fp32.txt" 2>&1 ||
    { echo "$m: //tools:eval failed; see $dir/eval_fp32.txt" >&2; exit 1; }
  for cal in minmax percentile; do
    "$eval_bin" --checkpoint="$dir/int8_$cal.safetensors" --precision=int8 \
        "${eval_flags[@]}" > "$dir/eval_int8_$cal.txt" 2>&1 ||
      { echo "$m: //tools:eval failed; see $dir/eval_int8_$cal.txt" >&2; exit 1; }
  done
  fp=$(eval_acc "$dir/eval_fp32.txt")
  mm=$(eval_acc "$dir/eval_int8_minmax.txt")
  pc=$(eval_acc "$dir/eval_int8_percentile.txt")
  [[ -n "$res" && -n "$fp" && -n "$mm" && -n "$pc" ]] ||
    { echo "$m: cannot read the accuracies from $dir/{quantize,eval}_*.txt" >&2; exit 1; }
  delta=$(awk -v f="$fp" -v a="$mm" -v b="$pc" 'BEGIN {printf "%+.4f", (a < b ? a : b) - f}')
  row="$m,$res,$run_epochs,$run_images,$(eval_images "$dir/eval_fp32.txt"),$prec,$fp,$mm,$pc,$delta,$(eval_cpu "$dir/eval_fp32.txt" "$dir/eval_int8_minmax.txt")"
  update_csv "$row"
  echo "$row"
done
print_table
