#!/usr/bin/env bash
# Test of bench/netns_mpi.sh: bad options are refused before anything is
# created (everywhere), then, where this process may create network
# namespaces (root, outside a sandbox), a 2-rank LeNet job runs through
# them at 1 Gbit/s and everything the script created is gone afterwards;
# then the same job with --delay_ms=2, whose measured round trip (ping -U
# rank 0 -> rank 1, printed by the script) must be 3.5..20 ms (over veth
# without delay it is about 0.05-0.15 ms), and whose delay lines must be
# gone afterwards. Elsewhere the job parts print why they are skipped and
# pass; so does the delay part where netem and the delay line (iptables)
# are both missing.
#
#   bazel test //bench:netns_mpi_test
#   (args: the script, //bench:ddp_step, then //bench:delay_line)

set -uo pipefail
script=$1
binary=$2
delay_line=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
# ip as netns_mpi.sh finds it: Bazel's test PATH (/bin:/usr/bin:...) may
# lack the directory that holds it.
ip_cmd=ip
for dir in /usr/sbin /sbin /usr/bin /bin; do
  if [[ -f "$dir/ip" && -x "$dir/ip" ]]; then ip_cmd="$dir/ip"; break; fi
done

# --- Validation: exit 2, no namespace, nothing run. ---------------------------
before=$("$ip_cmd" netns list 2>/dev/null | sort || true)
for bad in --ranks=1 --ranks=17 --ranks=2x --ranks=02 "--rate=1gbit;true" \
    --rate=fast --delay_ms=-1 '--model=$(id)' '--model=res net' --steps=0 \
    --steps=1001 --mode=train --overlap=yes --bucket_mb=0 --subnet=10.300.0 \
    --subnet=192.168.0 --iallreduce=tree --no_such_flag --delay_ms=1000.5 \
    --delay_ms=1001 --delay_ms=.5 '--delay_line=/no such' --delay_line=/nonexistent; do
  out=$("$script" "--binary=$binary" "--delay_line=$delay_line" "$bad" 2>&1)
  status=$?
  [[ $status == 2 ]] || fail "'$bad' gave exit $status, want 2: $out"
  [[ "$out" == *"netns_mpi: "* ]] || fail "'$bad': no message: $out"
done
for bad in 0 1000 '1;true'; do
  out=$(NETNS_MPI_STARTUP_S=$bad "$script" "--binary=$binary" 2>&1)
  status=$?
  [[ $status == 2 ]] || fail "NETNS_MPI_STARTUP_S='$bad' gave exit $status, want 2: $out"
  [[ "$out" == *"netns_mpi: error: NETNS_MPI_STARTUP_S="* ]] ||
    fail "NETNS_MPI_STARTUP_S='$bad': no message: $out"
done
[[ "$("$ip_cmd" netns list 2>/dev/null | sort || true)" == "$before" ]] ||
  fail "a refused option changed the namespaces"
echo "PASS: 23 bad options and 3 bad NETNS_MPI_STARTUP_S refused"

# --- A 2-rank job through the namespaces. ---------------------------------------
check=$("$script" --check "--binary=$binary" 2>&1)
status=$?
if [[ $status == 77 ]]; then
  echo "SKIPPED: the 2-rank job: $check"
  exit 0
fi
[[ $status == 0 ]] || fail "--check: exit $status: $check"

out=$("$script" "--binary=$binary" --ranks=2 --rate=1gbit --model=lenet \
  --steps=3 --warmup=1 --mode=ddp --overlap=on 2>&1)
status=$?
echo "$out"
[[ $status == 0 ]] || fail "the 2-rank job: exit $status"
json=$(grep '^{' <<<"$out")
for want in '"ranks":2' '"backend":"mpi"' '"mode":"ddp"' '"model":"lenet"' \
    '"buckets_started_in_backward":1'; do
  [[ "$json" == *"$want"* ]] || fail "result lacks $want: $json"
done
grep -q 'rate per link and direction: 1gbit' <<<"$out" || fail "no tbf line"
# The gradients crossed the veth: each rank's link sent at least the 4 steps'
# gradients (LeNet: 61,706 float32 = 246,824 bytes a step).
for rank in 0 1; do
  bytes=$(sed -n "s/^netns_mpi: rank $rank's link sent \([0-9]*\) bytes$/\1/p" <<<"$out")
  [[ -n "$bytes" && "$bytes" -ge 987296 ]] || fail "rank $rank's link sent '$bytes' bytes"
done
prefix=$(sed -n 's/^netns_mpi: 2 ranks in namespaces \(dvn[0-9a-f]\{6\}\)r0\.\..*/\1/p' <<<"$out")
[[ -n "$prefix" ]] || fail "no namespace prefix in the output"
if "$ip_cmd" netns list | grep -q "^$prefix"; then fail "namespaces $prefix* left behind"; fi
[[ "$("$ip_cmd" netns list | sort)" == "$before" ]] || fail "the namespace list changed"
if ls -d /tmp/netns_mpi.* 2>/dev/null | xargs -r grep -l "$prefix" 2>/dev/null | grep -q .; then
  fail "its temporary directory was left behind"
fi
echo "PASS: 2-rank job over namespaces $prefix*, all removed"

# --- Rank 0's daemon never starts: the launch watchdog relaunches, once. -------
# 10 s: long enough for a real daemon to come up on a loaded machine (CI
# runs other tests beside this one), so that only the lost one is relaunched.
out=$(NETNS_MPI_TEST_LOSE_DAEMON=1 NETNS_MPI_STARTUP_S=10 "$script" \
  "--binary=$binary" --ranks=2 --rate=1gbit --model=lenet --steps=2 --warmup=1 \
  --mode=ddp 2>&1)
status=$?
echo "$out"
[[ $status == 0 ]] || fail "the relaunched job: exit $status"
grep -q '^netns_mpi: launch attempt 1: no process of the job came up in rank namespace(s) 0 within 10 s' \
  <<<"$out" || fail "no launch watchdog message"
grep -q '^{.*"model":"lenet"' <<<"$out" || fail "the relaunched job printed no result"
[[ "$("$ip_cmd" netns list | sort)" == "$before" ]] || fail "the namespace list changed"
if pgrep -x -f 'sleep 600' >/dev/null; then fail "the lost daemon's stand-in is left running"; fi
echo "PASS: a daemon that never started: relaunched, nothing left behind"

# --- The same job with 2 ms one way per link. ------------------------------------
out=$("$script" "--binary=$binary" "--delay_line=$delay_line" --ranks=2 \
  --rate=1gbit --delay_ms=2 --model=lenet --steps=3 --warmup=1 --mode=ddp 2>&1)
status=$?
echo "$out"
[[ $status == 0 ]] || fail "the 2-rank job with delay: exit $status"
grep -q '^{.*"model":"lenet"' <<<"$out" || fail "the job with delay printed no result"
prefix=$(sed -n 's/^netns_mpi: 2 ranks in namespaces \(dvn[0-9a-f]\{6\}\)r0\.\..*/\1/p' <<<"$out")
[[ -n "$prefix" ]] || fail "no namespace prefix in the output"
if "$ip_cmd" netns list | grep -q "^$prefix"; then fail "namespaces $prefix* left behind"; fi
[[ "$("$ip_cmd" netns list | sort)" == "$before" ]] || fail "the namespace list changed"
for pid in $(sed -n 's/^netns_mpi: delay line pids: //p' <<<"$out"); do
  [[ ! -e "/proc/$pid" ]] || [[ "$(readlink "/proc/$pid/exe")" != */delay_line ]] ||
    fail "delay line $pid left running"
done
if grep -q '^netns_mpi: delay: NOT SHAPED' <<<"$out"; then
  echo "SKIPPED: the delay check: $(grep '^netns_mpi: delay: ' <<<"$out")"
  exit 0
fi
grep -q '^netns_mpi: delay: 2 ms one way per link' <<<"$out" || fail "no delay line"
rtt=$(sed -n 's/^netns_mpi: measured RTT rank 0 -> rank 1: avg \([0-9.]*\) ms.*/\1/p' <<<"$out")
[[ -n "$rtt" ]] || fail "no measured RTT (is ping installed? iputils-ping)"
awk -v r="$rtt" 'BEGIN { exit !(r >= 3.5 && r <= 20) }' ||
  fail "measured RTT $rtt ms with 2 ms each way, want 3.5..20 ms"
echo "PASS: 2 ms each way: RTT $rtt ms; namespaces $prefix* and the delay lines gone"
