#!/usr/bin/env bash
# The dashboard of a real trainer against hostile clients (hostile_clients.py
# attack: 1,040 idle connections opened again as the server closes them, 10
# slowloris connections, full-history polls, Chart.js with br and gzip),
# under the usual limit of 1,024 open files (ulimit -n 1024):
#
#  1. LeNet trains its second epoch under the attack, writing a checkpoint
#     at every step. The idle connections used to take every descriptor:
#     "cannot write .../model.safetensors.tmp: Too many open files", exit 1.
#     It must end with status 0 and both epochs in metrics.csv, the server
#     having closed the connections past its 64.
#  2. A second run, held before its second epoch under the attack, gets
#     SIGTERM: it must exit (143) within 5 s.
#
#   dashboard_hostile_test.sh TRAINER HOSTILE_CLIENTS_PY
set -euo pipefail

trainer=$1
clients=$2
tmp=${TEST_TMPDIR:?}

hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < 1400)); then
  echo "SKIPPED: the hard open-file limit $hard leaves the clients no room" \
    "for 1,050 connections"
  exit 0
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# start_run NAME FLAGS...: starts the trainer with at most 1,024 open files,
# held before its second epoch; sets `trainer_pid`.
start_run() {
  local name=$1
  shift
  (
    ulimit -n 1024
    exec "$trainer" --epochs=2 --hold_before_epoch=2 --train_limit=1024 \
      --test_limit=256 --batch_size=64 --threads=2 --dashboard=0 \
      --progress=false --out="$tmp/$name" "$@"
  ) >"$tmp/$name.log" 2>&1 &
  trainer_pid=$!
  pids+=("$trainer_pid")
}

# wait_for FILE PATTERN SECONDS WHAT: until FILE matches PATTERN (grep -E).
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      echo "FAIL: no $4 within $3 s:" >&2
      cat "$tmp"/*.log >&2
      exit 1
    fi
    sleep 0.1
  done
}

# attack NAME: starts the clients on NAME's dashboard once it holds before
# epoch 2, and waits until their connections are open.
attack() {
  wait_for "$tmp/$1.log" 'holding before epoch 2' 300 "hold of $1"
  local port
  port=$(grep -oE 'dashboard: http://127\.0\.0\.1:[0-9]+/' "$tmp/$1.log" |
    head -1 | grep -oE '[0-9]+/$' | tr -d /)
  python3 "$clients" attack "$port" --idle=1040 --seconds=600 \
    >"$tmp/$1.attack.log" 2>&1 &
  attack_pid=$!
  pids+=("$attack_pid")
  wait_for "$tmp/$1.attack.log" '^ready' 60 "attack on $1"
}

# stop_attack NAME: ends the clients and shows what they did.
stop_attack() {
  kill -TERM "$attack_pid"
  wait "$attack_pid" || true
  sed 's/^/  /' "$tmp/$1.attack.log"
}

start_run checkpointed --checkpoint_every=1
attack checkpointed
sleep 2  # the idle connections the server closed are opened again
kill -USR1 "$trainer_pid"
wait "$trainer_pid" && rc=0 || rc=$?
stop_attack checkpointed
if ((rc != 0)) || grep -q 'Too many open files' "$tmp/checkpointed.log"; then
  echo "FAIL: the run under attack exited with $rc:" >&2
  cat "$tmp/checkpointed.log" >&2
  exit 1
fi
# The server kept to its 64 connections: it closed most of the 1,040.
closed=$(grep -oE '[0-9]+ closed by the server' "$tmp/checkpointed.attack.log" |
  awk '{ n += $1 } END { print n + 0 }')
if ((closed < 900)); then
  echo "FAIL: the server closed only $closed of the clients' connections" >&2
  exit 1
fi
rows=$(($(wc -l <"$tmp/checkpointed/metrics.csv") - 1))
if ((rows != 2)); then
  echo "FAIL: metrics.csv has $rows epochs, not 2" >&2
  exit 1
fi
echo "trained 2 epochs under attack, a checkpoint every step: exit 0"

start_run stopped
attack stopped
start=$(date +%s%N)
kill -TERM "$trainer_pid"
wait "$trainer_pid" && rc=0 || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
stop_attack stopped
if ((rc != 143 || ms > 5000)); then
  echo "FAIL: SIGTERM under attack: exit $rc after $ms ms" \
    "(want 143 within 5 s):" >&2
  cat "$tmp/stopped.log" >&2
  exit 1
fi
echo "SIGTERM under attack: exit 143 after $ms ms"
echo PASS
