#!/usr/bin/env bash
# kill -9 campaign: trains MLP with a checkpoint every step, kills it at a
# random moment, then (1) starts it again WITHOUT --resume, which must be
# refused and change nothing in the run directory, and (2) resumes it (killed
# again at random, until a resume completes). The finished weights must equal
# an uninterrupted run's byte for byte.
#
#   bazel build //models/mlp:train
#   tools/kill_campaign.sh bazel-bin/models/mlp/train 40
#
# Not a Bazel test: 40 kills take minutes. Uses the default data
# (/usr/share/datasets/fashion-mnist).
set -uo pipefail
trainer=$1
kills=${2:-40}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
A=(--dropout --train_limit=2048 --test_limit=256 --epochs=3 --batch_size=64
   --optimizer=adam --lr=1e-3 --checkpoint_every=1 --seed=7 --progress=false)
start=$(date +%s%N)
"$trainer" "${A[@]}" --out="$tmp/ref" >"$tmp/ref.log" 2>&1 || { echo "reference run failed"; exit 1; }
run_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "uninterrupted run: ${run_ms} ms"
snapshot() { (cd "$1" && find . -type f ! -name .lock -exec sha256sum {} + | sort); }
done_kills=0 campaigns=0 refused=0 bad=0
run_killed() {  # DIR EXTRA...: runs, kills at a random moment; 0 if it finished first
  local dir=$1; shift
  # In a process group of its own, killed whole: the trainer and the
  # gnuplot it may be running for metrics.png, as a crash would end both.
  setsid "$trainer" "${A[@]}" --out="$dir" "$@" >>"$dir.log" 2>&1 &
  local pid=$!
  sleep "$(awk -v r=$RANDOM -v t=$run_ms 'BEGIN{printf "%.3f", r/32768*t/1000}')"
  if kill -9 -- "-$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    done_kills=$((done_kills+1))
    return 1
  fi
  wait "$pid"
}
while ((done_kills < kills)); do
  campaigns=$((campaigns+1))
  dir="$tmp/c$campaigns"
  run_killed "$dir" && continue  # finished before the kill: no case
  while :; do
    # A directory that holds a run (a checkpoint or metrics) must refuse a
    # start without --resume and keep every byte; one with only the pending
    # weights of a first save that never committed holds no run.
    if [[ -e "$dir/model.safetensors" || -e "$dir/train_state.safetensors" ||
          -e "$dir/metrics.csv" ]]; then
      before=$(snapshot "$dir")
      "$trainer" "${A[@]}" --out="$dir" >"$dir.refused" 2>&1
      rc=$?
      after=$(snapshot "$dir")
      if ((rc != 1)) || [[ "$before" != "$after" ]]; then
        echo "FAIL: run without --resume in $dir: exit $rc; changed:"
        diff <(echo "$before") <(echo "$after")
        tail -2 "$dir.refused"
        bad=$((bad+1))
      else
        refused=$((refused+1))
      fi
    fi
    if [[ -e "$dir/model.safetensors" || -e "$dir/train_state.safetensors" ]]; then
      resume=(--resume)
    else
      resume=(--overwrite)  # killed before its first checkpoint committed
    fi
    run_killed "$dir" "${resume[@]}" && break
    ((done_kills < kills + 20)) || break
  done
  if ! cmp -s "$tmp/ref/model.safetensors" "$dir/model.safetensors"; then
    echo "FAIL: campaign $campaigns: weights differ from the uninterrupted run"; tail -3 "$dir.log"; bad=$((bad+1))
  fi
done
echo "kills: $done_kills in $campaigns campaigns; runs without --resume refused leaving the directory unchanged: $refused; failures: $bad"
((bad == 0))
