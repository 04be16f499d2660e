#!/usr/bin/env bash
# Test of bench/int8_accuracy.sh on a fake Fashion-MNIST (512 training and 64
# test images): bad arguments are refused with exit 2 before anything runs;
# a one-epoch softmax is trained, quantized both ways and evaluated, and its
# CSV row and Markdown table are checked; a second run only reads the
# finished run and replaces the row; CHECKPOINT_softmax takes a run
# directory or a file, and what its epochs, precision and images were is
# read beside it; a run of other settings in the same directory and a symlink
# planted in place of the CSV's temporary file are refused.
#
#   bazel test //bench:int8_accuracy_test
#   (args: the script, //tools:quantize, //tools:eval, //models/softmax:train,
#   //datasets/testing:write_fake_data)

set -uo pipefail
script=$1
write_fake_data=$5
# The script takes its binaries from a directory laid out like bazel-bin:
# the runfiles tree, where the arguments are (tools/quantize, ...).
bin="$PWD"
for f in "$2" "$3" "$4"; do
  [[ -x "$bin/$f" ]] || { echo "FAIL: $bin/$f is not in the runfiles" >&2; exit 1; }
done
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$write_fake_data" --dir="$tmp/data" --train=512 --test=64 ||
  fail "cannot write the fake data"
export BIN="$bin" RUNS="$tmp/runs" RESULTS="$tmp/results" THREADS=1 \
       DATA_DIR="$tmp/data" TRAIN_LIMIT=512 EPOCHS=1
csv="$tmp/results/int8_accuracy.csv"

# expect RC PATTERN [ENV=VALUE...] -- ARGS...: the script exits RC and its
# stderr contains PATTERN.
expect() {
  local rc_want="$1" pattern="$2" rc
  shift 2
  local envs=()
  while [[ "$1" != -- ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" bash "$script" "$@" > "$tmp/out" 2> "$tmp/err"
  rc=$?
  ((rc == rc_want)) || { cat "$tmp/err" >&2; fail "$*: exit $rc, want $rc_want"; }
  grep -qF -- "$pattern" "$tmp/err" ||
    { cat "$tmp/err" >&2; fail "$*: stderr lacks '$pattern'"; }
  echo "ok: ${envs[*]} $* -> exit $rc ($(grep -F -- "$pattern" "$tmp/err" | head -n 1))"
}

# --- Bad arguments: exit 2, nothing trained. ---------------------------------
expect 2 "unknown model 'resnet50'" -- resnet50
expect 2 "unknown flag --seeds=3" -- --seeds=3 softmax
expect 2 "--precision=int8: fp32 or bf16" -- --precision=int8 softmax
expect 2 "EPOCHS=0: must be a whole number" EPOCHS=0 -- softmax
expect 2 "THREADS=two: must be a whole number" THREADS=two -- softmax
expect 2 "TEST_LIMIT=-5: must be a whole number" TEST_LIMIT=-5 -- softmax
expect 2 "RESIZE_resnet=96px: must be a whole number" RESIZE_resnet=96px -- resnet
expect 2 "CHECKPOINT_softmax=$tmp/none: no such file" CHECKPOINT_softmax="$tmp/none" -- softmax
expect 1 "no $csv yet" -- --table
[[ ! -e "$tmp/runs/int8_softmax/model.safetensors" ]] || fail "a refused run trained"

# --- A one-epoch softmax: trained, quantized, evaluated. ---------------------
expect 0 "softmax: training in $tmp/runs/int8_softmax (28 px, fp32, 1 epochs)" -- softmax
row=$(grep '^softmax,' "$csv") || fail "no softmax row in $csv"
[[ "$(head -n 1 "$csv")" == "model,resolution,epochs,train_images,test_images,checkpoint_precision,fp32_acc,int8_minmax_acc,int8_percentile_acc,delta,cpu" ]] ||
  fail "header: $(head -n 1 "$csv")"
[[ "$row" =~ ^softmax,28,1,512,64,fp32,([01]\.[0-9]{4}),([01]\.[0-9]{4}),([01]\.[0-9]{4}),([-+][01]\.[0-9]{4}),.+\ \(fp32:\ [a-z0-9_]+\;\ int8:\ [a-z0-9_]+\)$ ]] ||
  fail "row: $row"
echo "ok: row $row"
bash "$script" --table > "$tmp/table" || fail "--table failed"
grep -q '^| softmax | 28 x 28 | 1 (512 images; 64 test images) | fp32 | [01]\.[0-9]* |' "$tmp/table" ||
  { cat "$tmp/table" >&2; fail "--table"; }

# --- Again: the finished run is only read; the row is replaced. --------------
cp "$tmp/runs/int8_softmax/model.safetensors" "$tmp/before"
expect 0 "softmax: finished in $tmp/runs/int8_softmax" -- softmax
cmp -s "$tmp/before" "$tmp/runs/int8_softmax/model.safetensors" || fail "the finished run changed"
(($(grep -c '^softmax,' "$csv") == 1)) || fail "two softmax rows: $(cat "$csv")"

# --- An existing checkpoint: its epochs and precision from beside it. --------
mkdir "$tmp/given"
cp "$tmp/runs/int8_softmax/"{model.safetensors,metrics.csv,log.txt} "$tmp/given/"
expect 0 "softmax: the checkpoint $tmp/given/model.safetensors (1 epochs, trained in fp32)" \
    CHECKPOINT_softmax="$tmp/given" EPOCHS=7 -- softmax
grep -q '^softmax,28,1,?,64,fp32,' "$csv" || fail "row of the given checkpoint: $(grep '^softmax,' "$csv")"
[[ "$(ls "$tmp/given")" == $'log.txt\nmetrics.csv\nmodel.safetensors' ]] ||
  fail "wrote beside the given checkpoint: $(ls "$tmp/given")"

# --- A given checkpoint with its train_state: the run's settings from
# there, its epochs from the weights' global_step. A fabricated train_state
# of 3 steps an epoch (the run had 2) makes the checkpoint one from inside
# epoch 1, of a bf16 run on all images; a live pid in .lock is noted. -------
mkdir "$tmp/given2"
cp "$tmp/runs/int8_softmax/"{model.safetensors,train_state.safetensors} "$tmp/given2/"
expect 0 "softmax: the checkpoint $tmp/given2/model.safetensors (1 epochs, trained in fp32)" \
    CHECKPOINT_softmax="$tmp/given2/model.safetensors" -- softmax
grep -q '^softmax,28,1,512,64,fp32,' "$csv" || fail "row of given2: $(grep '^softmax,' "$csv")"
json='{"__metadata__":{"steps_per_epoch":"3","setting.precision":"bf16","setting.train_limit":"0"}}'
{ printf %b "\\x$(printf %02x "${#json}")\\0\\0\\0\\0\\0\\0\\0"; printf '%s' "$json"; } > "$tmp/given2/train_state.safetensors"
echo $$ > "$tmp/given2/.lock"
expect 0 "softmax: note: the checkpoint is from inside epoch 1 (step 2, 3 steps an epoch)" \
    CHECKPOINT_softmax="$tmp/given2" -- softmax
grep -q "note: process $$ (a trainer?) holds $tmp/given2/.lock" "$tmp/err" || fail "no note of the lock"
grep -q '^softmax,28,0.67,60000,64,bf16,' "$csv" || fail "row of given2 inside an epoch: $(grep '^softmax,' "$csv")"

# --- Refusals: other settings in the run directory, a planted symlink. -------
expect 1 "holds a run of other settings" EPOCHS=2 -- softmax
cp "$csv" "$tmp/csv_before"
ln -s "$tmp/victim" "$csv.tmp"
expect 1 "$csv.tmp is a symlink; not writing through it" -- softmax
[[ ! -e "$tmp/victim" ]] || fail "wrote through the symlink"
cmp -s "$csv" "$tmp/csv_before" || fail "the CSV changed"
echo PASS
