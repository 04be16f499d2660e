#!/usr/bin/env bash
# Bad input to the trainer and eval binaries: every case must exit with status
# 1 and one line "error: ..." (absl's "ERROR: ..." for flags it cannot parse)
# that names the flag or file, never a CHECK failure, signal or sanitizer
# report. A few happy paths check the fixtures and the inputs that used to
# crash. Prints a table of every case and what the user sees.
#
# Args: softmax train, lenet train, mlp train, eval, write_fake_data,
# bn_lenet train, export_onnx, models:train, quantize.
set -uo pipefail

SOFTMAX="$1" LENET="$2" MLP="$3" EVAL="$4" WRITE="$5" BN_LENET="$6" EXPORT="$7"
ZOO_TRAIN="$8" QUANTIZE="$9"
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
FAILURES=0
CASES=0

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

# A signal, a CHECK failure or a sanitizer report in stderr is always a bug.
crash_free() {  # NAME RC STDERR_FILE
  if (($2 > 128)) || grep -qE "Check failed|SIGSEGV|SIGABRT|Aborted|stack trace|AddressSanitizer|LeakSanitizer|runtime error:" "$3"; then
    fail "$1: crashed (exit $2):"
    sed 's/^/    /' "$3" >&2
    return 1
  fi
}

# expect_error NAME PATTERN CMD...: CMD exits 1, its stderr's last line is the
# only one starting with "error: " (or absl's "ERROR: ") and contains PATTERN.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  CASES=$((CASES + 1))
  local out="$TMP/case.out" err="$TMP/case.err" rc
  timeout 120 "$@" > "$out" 2> "$err"
  rc=$?
  crash_free "$name" "$rc" "$err" || return
  local errors last
  errors=$(grep -cE '^(error|ERROR): ' "$err")
  last=$(tail -n 1 "$err")
  if ((rc != 1)); then
    fail "$name: exit $rc, want 1; stderr:"
    sed 's/^/    /' "$err" >&2
  elif ((errors != 1)) || [[ ! "$last" =~ ^(error|ERROR):\  ]]; then
    fail "$name: want exactly one error line, last; stderr:"
    sed 's/^/    /' "$err" >&2
  elif [[ "$last" != *"$pattern"* ]]; then
    fail "$name: message lacks '$pattern': $last"
  else
    printf '| %s | %s |\n' "$name" "${last//$TMP/\$TMP}"
  fi
}

# expect_ok NAME CMD...: CMD exits 0 without crashing.
expect_ok() {
  local name="$1"
  shift
  CASES=$((CASES + 1))
  local err="$TMP/case.err" rc
  timeout 120 "$@" > "$TMP/case.out" 2> "$err"
  rc=$?
  crash_free "$name" "$rc" "$err" || return
  if ((rc != 0)); then
    fail "$name: exit $rc, want 0; stderr:"
    sed 's/^/    /' "$err" >&2
  else
    printf '| %s | (exit 0) %s |\n' "$name" "$(tail -n 1 "$TMP/case.out")"
  fi
}

make_data() {  # DIR [write_fake_data flags...]
  local dir="$1"
  shift
  rm -rf "$dir"
  "$WRITE" --dir="$dir" --train=64 --test=32 "$@" || { echo "cannot write $dir" >&2; exit 1; }
}

# Overwrites one byte of FILE at OFFSET with the octal escape BYTE.
poke() {  # FILE OFFSET BYTE
  printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# --- Fixtures ----------------------------------------------------------------
GOOD="$TMP/good"
make_data "$GOOD"

TRUNCATED="$TMP/truncated"
make_data "$TRUNCATED"
truncate -s 1000 "$TRUNCATED/train-images-idx3-ubyte"

GZIP="$TMP/gzip"
make_data "$GZIP" --gzip
size=$(stat -c %s "$GZIP/train-images-idx3-ubyte.gz")
poke "$GZIP/train-images-idx3-ubyte.gz" $((size / 2)) '\377'
poke "$GZIP/train-images-idx3-ubyte.gz" $((size / 2 + 1)) '\000'

MISMATCH="$TMP/mismatch"
make_data "$MISMATCH" --train_labels=60

BAD_LABEL="$TMP/bad_label"
make_data "$BAD_LABEL"
poke "$BAD_LABEL/t10k-labels-idx1-ubyte" $((8 + 3)) '\012'  # label 10

NOT_IDX="$TMP/not_idx"
make_data "$NOT_IDX"
echo "hello, world" > "$NOT_IDX/train-labels-idx1-ubyte"

EMPTY_FILE="$TMP/empty_file"
make_data "$EMPTY_FILE"
: > "$EMPTY_FILE/t10k-images-idx3-ubyte"

WIDE="$TMP/wide"
make_data "$WIDE" --width=30

FAST=(--data_dir="$GOOD" --train_limit=64 --test_limit=32 --epochs=1
      --batch_size=16 --threads=1 --progress=false)
EV=(--data_dir="$GOOD" --limit=32 --threads=1)

# A softmax run to resume from and to evaluate.
RUN="$TMP/run"
"$SOFTMAX" "${FAST[@]}" --out="$RUN" > /dev/null 2>&1 || { echo "happy run failed" >&2; exit 1; }
CKPT="$RUN/model.safetensors"
FLIPPED="$TMP/flipped.safetensors"
cp "$CKPT" "$FLIPPED"
poke "$FLIPPED" $(($(stat -c %s "$FLIPPED") - 100)) '\125'
HALF="$TMP/half.safetensors"
head -c $(($(stat -c %s "$CKPT") / 2)) "$CKPT" > "$HALF"
CORRUPT_RUN="$TMP/corrupt_run"
mkdir -p "$CORRUPT_RUN" && cp "$FLIPPED" "$CORRUPT_RUN/model.safetensors"

echo "| case | what the user sees |"
echo "|---|---|"

# --- Trainer flags -------------------------------------------------------------
expect_error "train --batch_size=0" "--batch_size=0: must be positive" "$SOFTMAX" "${FAST[@]}" --batch_size=0
expect_error "train --batch_size=-4" "--batch_size=-4" "$SOFTMAX" "${FAST[@]}" --batch_size=-4
expect_error "train --lr=-1" "--lr=-1: must be a positive number" "$SOFTMAX" "${FAST[@]}" --lr=-1
expect_error "train --lr=0" "--lr=0" "$SOFTMAX" "${FAST[@]}" --lr=0
expect_error "train --lr=nan" "--lr=nan" "$SOFTMAX" "${FAST[@]}" --lr=nan
expect_error "train --epochs=0" "--epochs=0: must be positive" "$SOFTMAX" "${FAST[@]}" --epochs=0
expect_error "train --resize=0" "--resize=0" "$SOFTMAX" "${FAST[@]}" --resize=0
expect_error "lenet train --resize=5" "--resize=5: LeNet needs an input size between 12 and 512, got 5" "$LENET" "${FAST[@]}" --resize=5
expect_error "softmax train --resize=1000" "--resize=1000" "$SOFTMAX" "${FAST[@]}" --resize=1000
expect_error "train --momentum=1" "--momentum=1: must be in [0, 1)" "$SOFTMAX" "${FAST[@]}" --momentum=1
expect_error "train --optimizer=lbfgs" "--optimizer=lbfgs: must be sgd, adam or adamw" "$SOFTMAX" "${FAST[@]}" --optimizer=lbfgs
expect_error "train --lr_schedule=exp" "--lr_schedule=exp: must be constant, step or cosine" "$SOFTMAX" "${FAST[@]}" --lr_schedule=exp
expect_error "train --augment=rotate" "--augment=rotate: unknown augmentation 'rotate'" "$SOFTMAX" "${FAST[@]}" --augment=rotate
expect_error "train --lr_schedule=step alone" "--lr_step_epochs=0: must be in" "$SOFTMAX" "${FAST[@]}" --lr_schedule=step
expect_error "train --clip_grad_norm=-1" "--clip_grad_norm=-1: must be >= 0" "$SOFTMAX" "${FAST[@]}" --clip_grad_norm=-1
expect_error "train --checkpoint_every without --out" "--checkpoint_every=5: needs --out" "$SOFTMAX" "${FAST[@]}" --checkpoint_every=5
expect_error "train --momentum=nan" "--momentum=nan" "$SOFTMAX" "${FAST[@]}" --momentum=nan
expect_error "train --weight_decay=-1" "--weight_decay=-1: must be >= 0" "$SOFTMAX" "${FAST[@]}" --weight_decay=-1
expect_error "train --threads=-2" "--threads=-2: must be >= 0" "$SOFTMAX" "${FAST[@]}" --threads=-2
expect_error "train --train_limit=-1" "--train_limit=-1" "$SOFTMAX" "${FAST[@]}" --train_limit=-1
expect_error "train --test_limit=-1" "--test_limit=-1" "$SOFTMAX" "${FAST[@]}" --test_limit=-1
expect_error "train --epochs=abc" "Illegal value 'abc' specified for flag 'epochs'" "$SOFTMAX" "${FAST[@]}" --epochs=abc
expect_error "train --seed=-1" "Illegal value '-1' specified for flag 'seed'" "$SOFTMAX" "${FAST[@]}" --seed=-1
expect_error "train --dashboard=70000" "--dashboard=70000: must be a port in 0..65535" "$SOFTMAX" "${FAST[@]}" --dashboard=70000
expect_error "train --dashboard=-1" "--dashboard=-1: must be a port in 0..65535" "$SOFTMAX" "${FAST[@]}" --dashboard=-1
expect_error "train --dashboard=http" "Illegal value 'http' specified for flag 'dashboard'" "$SOFTMAX" "${FAST[@]}" --dashboard=http
expect_error "train --dashboard_keep alone" "--dashboard_keep: needs --dashboard=PORT" "$SOFTMAX" "${FAST[@]}" --dashboard_keep
expect_error "train --hold_before_epoch=1" "--hold_before_epoch=1: must be 0 (off) or an epoch from 2 to --epochs=3" "$SOFTMAX" "${FAST[@]}" --epochs=3 --hold_before_epoch=1
expect_error "train --hold_before_epoch past --epochs" "--hold_before_epoch=2: must be 0 (off) or an epoch from 2 to --epochs=1" "$SOFTMAX" "${FAST[@]}" --hold_before_epoch=2
# A port another process listens on: the error names it, nothing is taken.
BUSY_PORT_FILE="$TMP/busy_port"
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(120)
' "$BUSY_PORT_FILE" &
LISTENER=$!
for _ in $(seq 100); do [[ -s "$BUSY_PORT_FILE" ]] && break; sleep 0.05; done
BUSY_PORT=$(cat "$BUSY_PORT_FILE")
expect_error "train --dashboard=<port in use>" "--dashboard=$BUSY_PORT: cannot listen on 127.0.0.1:$BUSY_PORT" "$SOFTMAX" "${FAST[@]}" --dashboard="$BUSY_PORT"
kill "$LISTENER"
expect_ok "train --dashboard=0 --profile" "$SOFTMAX" "${FAST[@]}" --dashboard=0 --profile
grep -q "^Per-layer time over" "$TMP/case.out" || fail "--profile printed no table: $(head -c 300 "$TMP/case.out")"
expect_error "train --no_such_flag" "Unknown command line flag 'no_such_flag'" "$SOFTMAX" "${FAST[@]}" --no_such_flag
expect_error "train --out=/proc/forbidden" "--out=/proc/forbidden: cannot create or write the directory" "$SOFTMAX" "${FAST[@]}" --out=/proc/forbidden
expect_error "train --out=<regular file>/x" "--out=$GOOD/train-labels-idx1-ubyte/x" "$SOFTMAX" "${FAST[@]}" --out="$GOOD/train-labels-idx1-ubyte/x"
# A newline in --out used to end a gnuplot string literal and run the rest
# of the path as gnuplot commands ("system" runs a shell).
PWNED="$TMP/pwned"
expect_error "train --out with a newline (gnuplot injection)" "byte " "$SOFTMAX" "${FAST[@]}" --out="$TMP/run"$'\nsystem "touch '"$PWNED"'"\n#'
[[ ! -e "$PWNED" ]] || fail "a newline in --out ran a command"
grep -q 'control character (0x0a)' "$TMP/case.err" || fail "newline in --out: $(tail -n 1 "$TMP/case.err")"
expect_error "train --out with a tab" "paths may not contain control characters" "$SOFTMAX" "${FAST[@]}" --out="$TMP/a"$'\tb'
expect_error "eval --dump with a newline" "--dump=" "$EVAL" --checkpoint="$TMP/run/model.safetensors" --dump="$TMP/d"$'\nsystem "touch '"$PWNED"'"'
[[ ! -e "$PWNED" ]] || fail "a newline in --dump ran a command"
expect_error "train --data_dir with an escape" "--data_dir=" "$SOFTMAX" "${FAST[@]}" --data_dir="$GOOD"$'\e[2J'
# A title or path never reaches gnuplot: a run whose --out holds gnuplot
# quotes and backquotes still draws its plot.
QUOTED="$TMP/q'uo\"te\`touch $PWNED\`"
expect_ok "train --out with quotes and backquotes" "$SOFTMAX" "${FAST[@]}" --out="$QUOTED"
[[ ! -e "$PWNED" ]] || fail "quotes in --out ran a command"
if command -v gnuplot > /dev/null; then
  [[ "$(head -c 4 "$QUOTED/metrics.png" | tail -c 3)" == PNG ]] || fail "no plot in $QUOTED"
fi
# Files planted in a shared --out: never written through, never replaced,
# and refused before any training.
VICTIM="$TMP/victim"
for planted in metrics.csv model.safetensors metrics.png model.safetensors.tmp metrics.csv.tmp metrics.png.tmp; do
  echo precious > "$VICTIM"
  rm -rf "$TMP/shared" && mkdir "$TMP/shared"
  ln -s "$VICTIM" "$TMP/shared/$planted"
  expect_error "train, $planted planted as a symlink" "--out=$TMP/shared: refusing to write $TMP/shared/${planted%.tmp}" "$SOFTMAX" "${FAST[@]}" --out="$TMP/shared"
  grep -q "symbolic link" "$TMP/case.err" || fail "$planted: $(tail -n 1 "$TMP/case.err")"
  grep -q "^epoch" "$TMP/case.out" && fail "$planted: trained before refusing"
  [[ "$(cat "$VICTIM")" == precious ]] || fail "$planted: the symlink's target was written"
  [[ -L "$TMP/shared/$planted" ]] || fail "$planted: the symlink was replaced"
done
rm -rf "$TMP/shared" && mkdir "$TMP/shared" && mkfifo "$TMP/shared/metrics.csv"
expect_error "train, metrics.csv planted as a FIFO" "metrics.csv: it is a FIFO, not a regular file" "$SOFTMAX" "${FAST[@]}" --out="$TMP/shared"
# A directory or a file of another user (where this test can chown: root).
rm -rf "$TMP/theirs" && mkdir "$TMP/theirs"
if chown 65534 "$TMP/theirs" 2> /dev/null; then
  expect_error "train --out owned by another user" "--out=$TMP/theirs: the directory belongs to uid 65534, not to this user" "$SOFTMAX" "${FAST[@]}" --out="$TMP/theirs"
  [[ -z "$(ls -A "$TMP/theirs")" ]] || fail "wrote into another user's directory"
  ln -s "$GOOD" "$TMP/theirs_link" && chown -h 65534 "$TMP/theirs_link"
  expect_error "train --out is another user's symlink" "the symbolic link belongs to uid 65534" "$SOFTMAX" "${FAST[@]}" --out="$TMP/theirs_link"
  rm -rf "$TMP/shared" && mkdir "$TMP/shared" && echo theirs > "$TMP/shared/metrics.png" && chown 65534 "$TMP/shared/metrics.png"
  expect_error "train, metrics.png of another user" "metrics.png: it belongs to uid 65534" "$SOFTMAX" "${FAST[@]}" --out="$TMP/shared"
else
  echo "(cannot chown here: other-user cases skipped)" >&2
fi
# A stale temporary file of ours (a killed save) is removed at the start.
rm -rf "$TMP/stale" && mkdir "$TMP/stale" && echo half > "$TMP/stale/model.safetensors.tmp"
expect_ok "train with a stale model.safetensors.tmp" "$SOFTMAX" "${FAST[@]}" --out="$TMP/stale"
grep -q "removed $TMP/stale/model.safetensors.tmp, left by a run that was killed" "$TMP/case.err" || fail "stale tmp not reported"
[[ -z "$(ls "$TMP/stale" | grep tmp)" ]] || fail "tmp files left: $(ls "$TMP/stale")"
# A second trainer on a directory in use (the lock held by this shell).
rm -rf "$TMP/busy" && mkdir "$TMP/busy"
exec 9> "$TMP/busy/.lock"
if flock -n 9; then
  echo 4242 >&9
  expect_error "train on a directory another run is using" "--out=$TMP/busy: another run (pid 4242) is using this directory" "$SOFTMAX" "${FAST[@]}" --out="$TMP/busy"
  [[ ! -e "$TMP/busy/metrics.csv" ]] || fail "the second run wrote metrics.csv"
fi
exec 9>&-
expect_ok "train on it once the other run ended" "$SOFTMAX" "${FAST[@]}" --out="$TMP/busy"
# Started with stdout closed (`>&-`): fd 1 is reopened on /dev/null first,
# so the run's lock file, opened next, does not receive the epoch lines.
rm -rf "$TMP/closed"
CASES=$((CASES + 1))
"$SOFTMAX" "${FAST[@]}" --out="$TMP/closed" >&- 2>"$TMP/case.err"
rc=$?
if crash_free "train with stdout closed" "$rc" "$TMP/case.err"; then
  if ((rc != 0)); then
    fail "train with stdout closed: exit $rc"
  elif [[ "$(cat "$TMP/closed/.lock")" =~ ^[0-9]+$ ]]; then
    printf '| %s | (exit 0) .lock holds the pid alone |\n' "train with stdout closed"
  else
    fail "train with stdout closed: .lock holds $(head -c 200 "$TMP/closed/.lock" | cat -v)"
  fi
fi
expect_error "train into a directory holding a run" "--out=$RUN already holds a run (model.safetensors, train_state.safetensors, metrics.csv; a checkpoint after epoch 1); pass --resume to continue it or --overwrite to replace it" "$SOFTMAX" "${FAST[@]}" --out="$RUN"
expect_error "train --resume --overwrite" "--resume and --overwrite contradict each other" "$SOFTMAX" "${FAST[@]}" --out="$RUN" --resume --overwrite
expect_ok "train --overwrite into the run with quotes" "$SOFTMAX" "${FAST[@]}" --out="$QUOTED" --overwrite
[[ $(grep -c '^[0-9]' "$QUOTED/metrics.csv") == 1 ]] || fail "--overwrite kept the old rows"
# --help lists the trainer's flags with their defaults and exits 0.
for h in --help --helpfull -help --helpshort; do
  expect_ok "train $h" "$SOFTMAX" $h
  for f in epochs lr batch_size resize threads seed out resume overwrite progress data_dir; do
    grep -q -- "^  --$f  " "$TMP/case.out" || fail "train $h does not list --$f"
  done
  grep -q "default: 0" "$TMP/case.out" || fail "train $h shows no defaults"
  grep -A1 -- "^  --epochs  " "$TMP/case.out" | grep -qE "default: [0-9]+ \(the recipe's\)" || fail "train $h: no recipe default for --epochs"
done
grep -q -- "--flagfile" "$TMP/case.out" && fail "--helpshort lists absl's own flags"
expect_ok "mlp train --help" "$MLP" --help
grep -q -- "^  --dropout  " "$TMP/case.out" || fail "mlp --help lacks its own --dropout"
expect_ok "eval --help" "$EVAL" --help
grep -q -- "^  --dump  " "$TMP/case.out" || fail "eval --help lacks --dump"
# Empty values and stray arguments are errors, not "use the recipe".
for f in epochs lr batch_size resize threads seed momentum train_limit; do
  expect_error "train --$f=" "--$f=: empty value; give a value or leave the flag out (default: " "$SOFTMAX" "${FAST[@]}" --$f=
done
expect_error "train --epochs ''" "--epochs=: empty value" "$SOFTMAX" "${FAST[@]}" --epochs ''
expect_error "eval --limit=" "--limit=: empty value; give a value or leave the flag out (default: 0)" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --limit=
expect_error "train out_dir (positional)" "unexpected argument 'out_dir': flags take the form --name=value" "$SOFTMAX" "${FAST[@]}" out_dir
expect_error "train --progress false" "unexpected argument 'false': flags take the form --name=value (for a boolean flag, --name=false or --noname)" "$SOFTMAX" "${FAST[@]}" --progress false
expect_error "eval <checkpoint> (positional)" "unexpected argument '$CKPT'" "$EVAL" "${EV[@]}" "$CKPT"
expect_ok "train --epochs 1 (value after a space)" "$SOFTMAX" "${FAST[@]}" --epochs 1
# Messages that used to mislead.
expect_error "train --out=/proc (was: fails after an epoch)" "--out=/proc: cannot create files there (" "$SOFTMAX" "${FAST[@]}" --out=/proc
expect_error "train --lr=1e-50 (was: --lr=0)" "--lr=1e-50: outside the range of float, which training uses" "$SOFTMAX" "${FAST[@]}" --lr=1e-50
expect_error "train --lr=1e300 (was: --lr=inf)" "--lr=1e+300: outside the range of float" "$SOFTMAX" "${FAST[@]}" --lr=1e300
expect_error "train --weight_decay=1e-60" "--weight_decay=1e-60: outside the range of float" "$SOFTMAX" "${FAST[@]}" --weight_decay=1e-60
expect_error "train --resume without --out" "--resume needs --out" "$SOFTMAX" "${FAST[@]}" --resume

# --- Data --------------------------------------------------------------------
expect_error "train --data_dir=/nonexistent" "neither /nonexistent/train-images-idx3-ubyte.gz nor /nonexistent/train-images-idx3-ubyte exists" "$SOFTMAX" "${FAST[@]}" --data_dir=/nonexistent
expect_error "train: truncated image file" "$TRUNCATED/train-images-idx3-ubyte: expected 50176 bytes of data, found 984" "$SOFTMAX" "${FAST[@]}" --data_dir="$TRUNCATED"
expect_error "train: corrupt gzip file" "$GZIP/train-images-idx3-ubyte.gz" "$SOFTMAX" "${FAST[@]}" --data_dir="$GZIP"
expect_error "train: image/label count mismatch" "has 64 images but file $MISMATCH/train-labels-idx1-ubyte has 60 labels" "$SOFTMAX" "${FAST[@]}" --data_dir="$MISMATCH"
expect_error "train: label out of range" "label 10 at index 3" "$SOFTMAX" "${FAST[@]}" --data_dir="$BAD_LABEL"
expect_error "train: label file is text" "$NOT_IDX/train-labels-idx1-ubyte" "$SOFTMAX" "${FAST[@]}" --data_dir="$NOT_IDX"
expect_error "train: empty image file" "$EMPTY_FILE/t10k-images-idx3-ubyte" "$SOFTMAX" "${FAST[@]}" --data_dir="$EMPTY_FILE"

# Huge inputs: refused before allocating, never std::bad_alloc.
BOMB="$TMP/bomb"
make_data "$BOMB"
rm "$BOMB/train-images-idx3-ubyte"
{ printf '\0\0\10\3\377\377\377\377\0\0\1\220\0\0\0\1'; head -c 16M /dev/zero; } | gzip -9 > "$BOMB/train-images-idx3-ubyte.gz"
expect_error "train: gzip bomb declaring 1.7 TB" "$BOMB/train-images-idx3-ubyte.gz: the header declares 1717986918000 bytes of data, more than its" "$SOFTMAX" "${FAST[@]}" --data_dir="$BOMB"
DEVDATA="$TMP/devdata"
make_data "$DEVDATA"
rm "$DEVDATA/train-images-idx3-ubyte" && ln -s /dev/zero "$DEVDATA/train-images-idx3-ubyte"
expect_error "train: image file is /dev/zero" "$DEVDATA/train-images-idx3-ubyte is a character device, not a regular file" "$SOFTMAX" "${FAST[@]}" --data_dir="$DEVDATA"

# --- Resume and divergence ---------------------------------------------------
expect_error "train --resume, no checkpoint" "cannot open checkpoint $TMP/empty_run/model.safetensors" "$SOFTMAX" "${FAST[@]}" --out="$TMP/empty_run" --resume
expect_error "train --resume, corrupt checkpoint" "checksum mismatch" "$SOFTMAX" "${FAST[@]}" --out="$CORRUPT_RUN" --resume --epochs=2
expect_error "lenet train --resume from a softmax run" "$RUN/model.safetensors is of model 'softmax', not lenet" "$LENET" "${FAST[@]}" --out="$RUN" --resume --epochs=2
expect_error "softmax train --resume at another --resize" "--resize=32: checkpoint $RUN/model.safetensors was trained at input size 28; resume with --resize=28" "$SOFTMAX" "${FAST[@]}" --out="$RUN" --resume --epochs=2 --resize=32
expect_error "mlp train --lr=1e30 (diverges)" "at epoch 1 step" "$MLP" "${FAST[@]}" --lr=1e30
grep -q "last good checkpoint: none" "$TMP/case.err" || fail "divergence message lacks the checkpoint"

expect_error "mlp train --lr=1e30 --skip_nonfinite (skips a whole epoch)" "every step of epoch 2 (4 of 4) had a non-finite loss and was skipped" "$MLP" "${FAST[@]}" --lr=1e30 --skip_nonfinite --epochs=3

# --- Inputs that used to crash or misbehave, now fine --------------------------
expect_ok "train on 28x30 images (was a CHECK in Linear)" "$SOFTMAX" "${FAST[@]}" --data_dir="$WIDE"
CAP=$((4 * $(getconf _NPROCESSORS_ONLN)))
expect_ok "train --threads=100000 (was a segfault in libgomp)" "$SOFTMAX" "${FAST[@]}" --threads=100000
grep -q -- "--threads=100000: capped at $CAP (4 per core on " "$TMP/case.err" || fail "--threads cap not reported: $(cat "$TMP/case.err")"
expect_ok "eval --threads=2147483647" "$EVAL" --data_dir="$GOOD" --limit=32 --checkpoint="$CKPT" --threads=2147483647
grep -q -- "--threads=2147483647: capped at $CAP" "$TMP/case.err" || fail "eval --threads cap not reported"
expect_ok "train --batch_size=2^63-1 (was zero batches)" "$SOFTMAX" "${FAST[@]}" --batch_size=9223372036854775807
grep -q "examples/sec" "$TMP/case.out" && ! grep -q " 0.0 examples/sec" "$TMP/case.out" || fail "huge batch trained nothing"
expect_ok "train --resume --epochs=2" "$SOFTMAX" "${FAST[@]}" --out="$RUN" --resume --epochs=2
[[ $(grep -c '^[0-9]' "$RUN/metrics.csv") == 2 ]] || fail "resume did not add a csv row"
expect_ok "train --resume --epochs=2 again (nothing to train)" "$SOFTMAX" "${FAST[@]}" --out="$RUN" --resume --epochs=2
grep -q "$RUN/model.safetensors already holds epoch 2 and --epochs=2: nothing to train; pass a larger --epochs to go on" "$TMP/case.err" || fail "no 'nothing to train': $(cat "$TMP/case.err")"
grep -q "wrote " "$TMP/case.err" && fail "claims to have written a run that trained nothing"
[[ $(grep -c '^[0-9]' "$RUN/metrics.csv") == 2 ]] || fail "a resume with nothing to train changed the csv"

# BatchNorm never gets a batch of 1 example in training (was a CHECK
# failure after a whole epoch).
expect_error "bn_lenet train --batch_size=1" "--batch_size=1 gives batches of 1 example: bn_lenet has BatchNorm, which needs at least 2 examples per batch to train" "$BN_LENET" "${FAST[@]}"  --batch_size=1
expect_ok "bn_lenet train, last batch of 1 (33 = 2 x 16 + 1)" "$BN_LENET" "${FAST[@]}" --train_limit=33 --batch_size=16
grep -q "each epoch drops its last batch (1 example of 33): bn_lenet has BatchNorm" "$TMP/case.err" || fail "the dropped batch was not reported"
expect_ok "bn_lenet train, last batch of 2 (34 = 2 x 16 + 2)" "$BN_LENET" "${FAST[@]}" --train_limit=34 --batch_size=16
grep -q "drops its last batch" "$TMP/case.err" && fail "dropped a batch of 2"
expect_error "bn_lenet train on 1 example" "the training set has 1 example: bn_lenet has BatchNorm" "$BN_LENET" "${FAST[@]}" --train_limit=1

# --- Eval --------------------------------------------------------------------
# A checkpoint holding NaN or Inf weights (from a writer without dive's
# CRCs: their keys renamed, same length) is refused by eval and --resume.
NAN_RUN="$TMP/nan_run"
mkdir -p "$NAN_RUN"
perl -0777 -pe 's/"dive\.crc32"/"dive.crc3x"/; s/"dive\.header_crc32"/"dive.header_crc3x"/' "$CKPT" > "$NAN_RUN/model.safetensors"
cp "$RUN/metrics.csv" "$NAN_RUN/metrics.csv"
expect_ok "eval of a checkpoint without dive's CRC" "$EVAL" "${EV[@]}" --checkpoint="$NAN_RUN/model.safetensors"
grep -q "checkpoint $NAN_RUN/model.safetensors has no dive.crc32 checksum (not written by dive?): its integrity was not checked" "$TMP/case.err" || fail "no warning for a checkpoint without CRC"
expect_ok "eval of a checkpoint with dive's CRC" "$EVAL" "${EV[@]}" --checkpoint="$CKPT"
grep -q "checksum" "$TMP/case.err" && fail "warned about a checked checkpoint"
size=$(stat -c %s "$NAN_RUN/model.safetensors")
for b in 0 0 300 177; do printf "\\$b"; done | dd of="$NAN_RUN/model.safetensors" bs=1 seek=$((size - 4)) conv=notrunc status=none  # NaN
expect_error "eval of a checkpoint holding NaN" "checkpoint $NAN_RUN/model.safetensors: tensor '1.weight' holds nan at element 7839 of 7840; these weights come from a diverged run" "$EVAL" "${EV[@]}" --checkpoint="$NAN_RUN/model.safetensors"
expect_error "train --resume from a checkpoint holding NaN" "tensor '1.weight' holds nan" "$SOFTMAX" "${FAST[@]}" --out="$NAN_RUN" --resume --epochs=5
grep -q -- "--lr" "$TMP/case.err" && fail "the NaN checkpoint blames --lr"
for b in 0 0 200 177; do printf "\\$b"; done | dd of="$NAN_RUN/model.safetensors" bs=1 seek=$((size - 4)) conv=notrunc status=none  # +Inf
expect_error "eval of a checkpoint holding Inf" "tensor '1.weight' holds inf at element 7839" "$EVAL" "${EV[@]}" --checkpoint="$NAN_RUN/model.safetensors"
expect_ok "eval of the run" "$EVAL" "${EV[@]}" --checkpoint="$CKPT"
expect_error "eval without --checkpoint" "--checkpoint is required" "$EVAL" "${EV[@]}"
expect_error "eval, missing checkpoint" "cannot open checkpoint /nonexistent/model.safetensors" "$EVAL" "${EV[@]}" --checkpoint=/nonexistent/model.safetensors
expect_error "eval, flipped byte" "checksum mismatch" "$EVAL" "${EV[@]}" --checkpoint="$FLIPPED"
expect_error "eval, truncated checkpoint" "$HALF" "$EVAL" "${EV[@]}" --checkpoint="$HALF"
expect_error "eval, not a checkpoint (a CSV)" "$RUN/metrics.csv" "$EVAL" "${EV[@]}" --checkpoint="$RUN/metrics.csv"
expect_error "eval --model=lenet on a softmax checkpoint" "does not fit model lenet: LoadStateDict: missing keys" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --model=lenet
expect_error "eval --model=nosuch" "unknown model 'nosuch'" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --model=nosuch
expect_error "eval --resize=32 on a 28x28 checkpoint" "shape mismatches [1.weight" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --resize=32
expect_error "eval --checkpoint=/dev/zero" "checkpoint /dev/zero is a character device, not a regular file" "$EVAL" "${EV[@]}" --checkpoint=/dev/zero
expect_error "eval --checkpoint=<a directory>" "checkpoint $RUN is a directory, not a regular file" "$EVAL" "${EV[@]}" --checkpoint="$RUN"
truncate -s 8G "$TMP/huge.safetensors"
expect_error "eval of an 8 GB checkpoint" "checkpoint $TMP/huge.safetensors is 8589934592 bytes, more than the limit of 4294967296 bytes" "$EVAL" "${EV[@]}" --checkpoint="$TMP/huge.safetensors"
rm -f "$TMP/huge.safetensors"
mkdir -p "$TMP/huge_run" && truncate -s 8G "$TMP/huge_run/model.safetensors"
expect_error "train --resume from an 8 GB checkpoint" "is 8589934592 bytes, more than the limit" "$SOFTMAX" "${FAST[@]}" --out="$TMP/huge_run" --resume --epochs=2
rm -rf "$TMP/huge_run"
expect_error "eval --resize=-3" "--resize=-3" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --resize=-3
expect_error "eval --batch_size=0" "--batch_size=0: must be positive" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --batch_size=0
expect_error "eval --limit=-1" "--limit=-1: must be >= 0" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --limit=-1
expect_error "eval --threads=-1" "--threads=-1: must be >= 0" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --threads=-1
expect_error "eval --data_dir=/nonexistent" "/nonexistent/t10k-images-idx3-ubyte" "$EVAL" --checkpoint="$CKPT" --data_dir=/nonexistent
expect_error "eval --dump=/proc/forbidden/x" "--dump=/proc/forbidden/x: cannot write into /proc/forbidden (No such file or directory)" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump=/proc/forbidden/x

# --dump never replaces what is not a regular file of ours, nor the
# checkpoint being evaluated; it is written atomically.
DEV="$TMP/devnull"
rm -f "$DEV"
if mknod "$DEV" c 1 3 2> /dev/null; then
  expect_error "eval --dump=<device node in \$TMP>" "--dump=$DEV: refusing to write $DEV: it is a character device, not a regular file" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump="$DEV"
  [[ -c "$DEV" ]] || fail "--dump replaced a device node"
else
  echo "(cannot mknod here: device node case skipped)" >&2
fi
expect_error "eval --dump=/dev/null" "--dump=/dev/null: refusing to write /dev/null: it is a character device" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump=/dev/null
[[ -c /dev/null ]] || fail "--dump replaced /dev/null"
cp "$CKPT" "$TMP/eval_me.safetensors"
cp "$CKPT" "$TMP/eval_me.before"
expect_error "eval --dump=<the checkpoint>" "is the checkpoint being evaluated" "$EVAL" "${EV[@]}" --checkpoint="$TMP/eval_me.safetensors" --dump="$TMP/eval_me.safetensors"
cmp -s "$TMP/eval_me.safetensors" "$TMP/eval_me.before" || fail "--dump overwrote the checkpoint"
ln -f "$TMP/eval_me.safetensors" "$TMP/hardlink.safetensors"
expect_error "eval --dump=<a hard link to the checkpoint>" "is the checkpoint being evaluated" "$EVAL" "${EV[@]}" --checkpoint="$TMP/eval_me.safetensors" --dump="$TMP/hardlink.safetensors"
echo precious > "$VICTIM"
ln -sf "$VICTIM" "$TMP/dump_link"
expect_error "eval --dump=<symlink>" "--dump=$TMP/dump_link: refusing to write $TMP/dump_link: it is a symbolic link" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump="$TMP/dump_link"
[[ "$(cat "$VICTIM")" == precious ]] || fail "--dump wrote through a symlink"
expect_error "eval --dump=<directory>" "it is a directory, not a regular file" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump="$TMP"
ln -sf "$VICTIM" "$TMP/dump.safetensors.tmp"
expect_error "eval --dump with a planted .tmp symlink" "dump.safetensors.tmp exists and is not ours to remove" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump="$TMP/dump.safetensors"
[[ "$(cat "$VICTIM")" == precious ]] || fail "--dump wrote through the .tmp symlink"
rm -f "$TMP/dump.safetensors.tmp"
expect_ok "eval --dump=<new file>" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump="$TMP/dump.safetensors"
[[ -f "$TMP/dump.safetensors" && ! -e "$TMP/dump.safetensors.tmp" ]] || fail "--dump did not write its file"
expect_ok "eval --dump=<the same file again>" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --dump="$TMP/dump.safetensors"

# Kernel path and precision.
expect_error "train --precision=fp16" "--precision=fp16: must be fp32 or bf16" "$LENET" "${FAST[@]}" --precision=fp16
expect_error "train --memory_format=nhwc" "--memory_format=nhwc: must be auto, contiguous or channels_last" "$LENET" "${FAST[@]}" --memory_format=nhwc
expect_error "eval --precision=" "--precision=: must be fp32, bf16 or int8" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --precision=
expect_error "train with DIVE_ISA=avx-512" "DIVE_ISA: unknown instruction set 'avx-512'" env DIVE_ISA=avx-512 "$LENET" "${FAST[@]}"
expect_ok "lenet train --precision=bf16" "$LENET" "${FAST[@]}" --precision=bf16
grep -q "^epoch 1: loss " "$TMP/case.out" || fail "bf16 training printed no epoch line"
expect_ok "lenet train --precision=bf16 --memory_format=channels_last" "$LENET" "${FAST[@]}" --precision=bf16 --memory_format=channels_last
grep -q "bf16 (channels-last)" "$TMP/case.err" || fail "the trainer's log does not say the activations are channels-last"
grep -q "cpu: .*kernels: " "$TMP/case.err" || fail "the trainer's log does not name the CPU and kernel path"
expect_ok "lenet train with DIVE_ISA=generic" env DIVE_ISA=generic "$LENET" "${FAST[@]}"
grep -q "kernels: generic (DIVE_ISA=generic)" "$TMP/case.err" || fail "DIVE_ISA=generic is not in the log"
expect_ok "eval --precision=bf16" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --precision=bf16
expect_ok "eval --precision=bf16 --memory_format=channels_last" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --precision=bf16 --memory_format=channels_last
expect_error "eval --memory_format=nchw" "--memory_format=nchw: must be auto, contiguous or channels_last" "$EVAL" "${EV[@]}" --checkpoint="$CKPT" --memory_format=nchw

# The zoo-wide trainer: any model by name, the same run as its own binary.
expect_ok "models:train --model=mlp_dropout" "$ZOO_TRAIN" "${FAST[@]}" --model=mlp_dropout --out="$TMP/zoo_dropout"
expect_ok "mlp train --dropout" "$MLP" "${FAST[@]}" --dropout --out="$TMP/mlp_dropout"
cmp -s "$TMP/zoo_dropout/model.safetensors" "$TMP/mlp_dropout/model.safetensors" ||
  fail "models:train --model=mlp_dropout and mlp train --dropout wrote different weights"
expect_error "models:train --model=nope" "--model: unknown model 'nope'" "$ZOO_TRAIN" "${FAST[@]}" --model=nope

# ONNX export of a checkpoint.
expect_ok "export_onnx" "$EXPORT" --checkpoint="$CKPT" --out="$TMP/model.onnx"
[[ -s "$TMP/model.onnx" ]] || fail "export_onnx wrote no file"
expect_error "export_onnx without --out" "--checkpoint and --out are required" "$EXPORT" --checkpoint="$CKPT"
expect_error "export_onnx --out=<the checkpoint>" "is the checkpoint being exported" "$EXPORT" --checkpoint="$CKPT" --out="$CKPT"
ln -sf "$VICTIM" "$TMP/link.onnx"
expect_error "export_onnx --out=<a symlink>" "refusing to write $TMP/link.onnx" "$EXPORT" --checkpoint="$CKPT" --out="$TMP/link.onnx"
[[ "$(cat "$VICTIM")" == precious ]] || fail "export_onnx wrote through a symlink"
expect_error "export_onnx, flipped byte" "checksum mismatch" "$EXPORT" --checkpoint="$FLIPPED" --out="$TMP/flipped.onnx"
expect_error "export_onnx --model=lenet on a softmax checkpoint" "does not fit model lenet" "$EXPORT" --checkpoint="$CKPT" --out="$TMP/m.onnx" --model=lenet

# Int8: a LeNet quantized (both calibrations) and evaluated in int8.
"$LENET" "${FAST[@]}" --out="$TMP/lenet_run" > /dev/null 2>&1 || fail "lenet run for int8 failed"
LCKPT="$TMP/lenet_run/model.safetensors"
INT8="$TMP/lenet_int8.safetensors"
# --reduce_range=false: its default (auto) depends on the CPU's int8 path.
QU=(--data_dir="$GOOD" --calibration_batches=2 --batch_size=16 --threads=1 --reduce_range=false)
expect_ok "quantize lenet" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$INT8"
grep -q "^0 .*Conv2d(1, 6.*int8 conv (float32 input quantized), float32 out" "$TMP/case.out" || fail "quantize did not list the int8 convolution"
grep -q "^1 .*Sigmoid.*float32 fallback: no int8 kernel" "$TMP/case.out" || fail "quantize did not list the Sigmoid's float32 fallback"
expect_ok "eval --precision=int8" "$EVAL" "${EV[@]}" --checkpoint="$INT8" --precision=int8
grep -q "^lenet on .*: test acc " "$TMP/case.out" || fail "int8 eval printed no accuracy"
expect_ok "export_onnx of an int8 checkpoint" "$EXPORT" --checkpoint="$INT8" --out="$TMP/int8.onnx"
grep -q "lenet (int8 QDQ)" "$TMP/case.out" || fail "export_onnx did not export the int8 model"
grep -q "QuantizeLinear" "$TMP/int8.onnx" || fail "export_onnx wrote no QuantizeLinear"
expect_error "export_onnx --resize on an int8 checkpoint" "--model and --resize cannot change that" "$EXPORT" --checkpoint="$INT8" --out="$TMP/int8.onnx" --resize=32
expect_ok "quantize lenet --reduce_range=true" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$TMP/lenet_int8_rr.safetensors" --reduce_range=true
grep -q "reduce_range: 0..127" "$TMP/case.out" || fail "quantize --reduce_range=true did not say so"
expect_ok "eval --precision=int8 of a reduce_range checkpoint" "$EVAL" "${EV[@]}" --checkpoint="$TMP/lenet_int8_rr.safetensors" --precision=int8
grep -q "^lenet on .*: test acc " "$TMP/case.out" || fail "int8 eval of the reduce_range checkpoint printed no accuracy"
expect_ok "export_onnx of a reduce_range checkpoint" "$EXPORT" --checkpoint="$TMP/lenet_int8_rr.safetensors" --out="$TMP/int8_rr.onnx"
grep -q "Clip" "$TMP/int8_rr.onnx" || fail "export_onnx of a reduce_range checkpoint wrote no Clip"
expect_error "quantize --reduce_range=maybe" "--reduce_range \"maybe\": must be auto, true or false" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$TMP/q.safetensors" --reduce_range=maybe
expect_ok "quantize lenet --calibration=percentile" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$INT8" --calibration=percentile
expect_ok "eval --precision=int8 --dump" "$EVAL" "${EV[@]}" --checkpoint="$INT8" --precision=int8 --dump="$TMP/int8_dump.safetensors"
expect_error "eval --precision=int8 of a float32 checkpoint" "$LCKPT is a float32 checkpoint, not an int8 one" "$EVAL" "${EV[@]}" --checkpoint="$LCKPT" --precision=int8
expect_error "eval of an int8 checkpoint without --precision=int8" "$INT8 is an int8 checkpoint (written by //tools:quantize), not a float32 one (//tools:eval --precision=int8 runs it)" "$EVAL" "${EV[@]}" --checkpoint="$INT8"
expect_error "eval --precision=int8 --model=mlp" "holds lenet quantized at 28 x 28; --model and --resize cannot change that" "$EVAL" "${EV[@]}" --checkpoint="$INT8" --precision=int8 --model=mlp
expect_error "quantize an int8 checkpoint" "is an int8 checkpoint" "$QUANTIZE" "${QU[@]}" --checkpoint="$INT8" --out="$TMP/twice.safetensors"
expect_error "quantize --calibration=mse" "--calibration=mse: must be minmax or percentile" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$TMP/q.safetensors" --calibration=mse
expect_error "quantize --calibration_batches=0" "--calibration_batches=0: must be at least 1" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$TMP/q.safetensors" --calibration_batches=0
expect_error "quantize without --out" "--checkpoint and --out are required" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT"
expect_error "quantize --out=<the checkpoint>" "is the checkpoint being quantized" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$LCKPT"
ln -sf "$VICTIM" "$TMP/link.safetensors"
expect_error "quantize --out=<a symlink>" "refusing to write $TMP/link.safetensors" "$QUANTIZE" "${QU[@]}" --checkpoint="$LCKPT" --out="$TMP/link.safetensors"
[[ "$(cat "$VICTIM")" == precious ]] || fail "quantize wrote through a symlink"
expect_error "quantize, flipped byte" "checksum mismatch" "$QUANTIZE" "${QU[@]}" --checkpoint="$FLIPPED" --out="$TMP/q.safetensors"

echo
echo "$CASES cases, $FAILURES failed"
((FAILURES == 0))
