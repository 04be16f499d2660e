#!/usr/bin/env bash
# bench/netns_mpi.sh: data-parallel training steps over a simulated network
# on this machine. Each MPI rank runs in a Linux network namespace of its
# own, joined to the others by a veth pair into a bridge (a star: rank i's
# veth <-> a port of one bridge in a "switch" namespace), over Open MPI's
# TCP transport only (--mca pml ob1 --mca btl tcp,self, the veth subnet via
# btl_tcp_if_include and oob_tcp_if_include), launched by mpirun in the
# switch namespace through a plm_rsh_agent that runs `ip netns exec <ns>` in
# place of ssh. Each link is rate-shaped with tbf in both directions (rank
# egress and switch-port egress) and delayed by --delay_ms, so that the
# one-way rank-to-rank latency is delay_ms:
#   - with the netem qdisc where this kernel has it, on the rank's egress
#     (netem at the root, the tbf under it: delay, then rate);
#   - otherwise (this VM's kernel has no netem) with a userspace delay line,
#     //bench:delay_line, one per rank namespace: an iptables-legacy rule
#     `-t mangle -A PREROUTING -i <rank veth> -j NFQUEUE --queue-num <rank>`
#     hands every packet the rank receives to it, and it lets each go
#     delay_ms after it arrived, in order. That is on the rank's ingress, so
#     after both tbf (rate, then delay: serialization, then propagation, as
#     on a wire), and on ingress rather than egress because a packet held on
#     the sender's egress still counts against its socket's TCP Small Queues
#     budget (about 1 ms of the pacing rate; netem orphans the packet, an
#     NFQUEUE cannot), which held TCP to 0.5 Gbit/s on a 1 Gbit/s link with
#     2 ms; on ingress the packet is already orphaned (0.94 Gbit/s, as
#     without delay). Needs iptables-legacy (package iptables; nft's queue
#     expression is not in this kernel).
# Where neither can be applied the script says so ("delay: NOT SHAPED") and
# runs unshaped in delay. Before the job, `ping -U` from rank 0's namespace
# to rank 1 prints the round trip seen (user to user: ping's default RTT
# uses the kernel's receive timestamp, taken before the ingress delay).
#
#   sudo bench/netns_mpi.sh --ranks=2 --rate=10gbit --model=resnet \
#       --steps=20 --mode=ddp --overlap=on
#
# prints "netns_mpi: ..." lines describing the network, then rank 0's JSON
# line from //bench:ddp_step (see bench/ddp_step.cc and bench/README.md,
# "Scaling over a network").
#
# Everything it creates is named with a prefix unique to the run
# ("dvn" + 6 random hex digits): namespaces <prefix>s (switch) and
# <prefix>r<i> (ranks), interfaces <prefix>br, <prefix>a<i>, <prefix>b<i>,
# all created inside those namespaces (nothing is added to the caller's
# namespace), and a temporary directory for the host file and the agent. An
# EXIT trap stops the delay lines it started and kills what still runs
# inside those namespaces (by pid), and
# deletes exactly those namespaces, which removes their interfaces. No other
# namespace or interface is touched.
#
# Needs root, iproute2 (ip, tc; found in /usr/sbin, /sbin, /usr/bin or /bin
# even when PATH lacks them) and openmpi-bin; for --delay_ms without netem
# iptables (iptables-legacy) and //bench:delay_line; iputils-ping for the
# RTT line. --check only tests whether
# namespaces can be made here: exit 0 if so, 77 (with the reason) if not.
#
# Every option is validated against a strict pattern before use; values
# reach commands only as separate, quoted arguments, never through a shell.

set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/netns_mpi.sh [--check] [options]
  --ranks=N          MPI ranks, one per namespace: 2..16 (default 2)
  --rate=R           each link's rate: none, or <n>mbit / <n>gbit (default 10gbit)
  --delay_ms=D       one-way delay per link in ms, 0..1000: netem where the
                     kernel has it, else the delay line (default 0)
  --model=NAME       zoo model (default resnet)
  --steps=S          timed steps, 1..1000 (default 20)
  --warmup=W         untimed steps first, 0..100 (default 3)
  --batch_size=B     per rank, 0 (the bench setting) or 1..4096 (default 0)
  --resize=P         input side, 0 (the bench setting) or 8..512 (default 0)
  --threads=T        kernel threads per rank, 1..64 (default 1)
  --mode=M           ddp | no_allreduce | allreduce_only (default ddp)
  --overlap=on|off   all-reduce during backward (default on)
  --bf16_compress=on|off   gradients sent as bf16 (default off)
  --bucket_mb=X      MiB per all-reduce bucket, e.g. 25 or 0.5 (default 25)
  --binary=PATH      the ddp_step binary (default: bazel-bin/bench/ddp_step)
  --delay_line=PATH  the delay_line binary, used for --delay_ms without netem
                     (default: bazel-bin/bench/delay_line)
  --subnet=10.A.B    the /24 the namespaces use, private to them (default 10.213.0)
  --iallreduce=A     Open MPI's MPI_Iallreduce algorithm (coll_libnbc):
                     auto (binomial below 4 ranks or 64 KiB, else ring) | ring |
                     binomial | rabenseifner | recursive_doubling (default auto)
EOF
}

die() { echo "netns_mpi: error: $*" >&2; exit 2; }

# --- Options ------------------------------------------------------------------
ranks=2 rate=10gbit delay_ms=0 model=resnet steps=20 warmup=3 batch_size=0
resize=0 threads=1 mode=ddp overlap=on bf16=off bucket_mb=25 binary="" delay_line="" subnet=10.213.0
iallreduce=auto
check_only=0
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --ranks=*) ranks=${arg#*=} ;;
    --rate=*) rate=${arg#*=} ;;
    --delay_ms=*) delay_ms=${arg#*=} ;;
    --model=*) model=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --warmup=*) warmup=${arg#*=} ;;
    --batch_size=*) batch_size=${arg#*=} ;;
    --resize=*) resize=${arg#*=} ;;
    --threads=*) threads=${arg#*=} ;;
    --mode=*) mode=${arg#*=} ;;
    --overlap=*) overlap=${arg#*=} ;;
    --bf16_compress=*) bf16=${arg#*=} ;;
    --bucket_mb=*) bucket_mb=${arg#*=} ;;
    --binary=*) binary=${arg#*=} ;;
    --delay_line=*) delay_line=${arg#*=} ;;
    --subnet=*) subnet=${arg#*=} ;;
    --iallreduce=*) iallreduce=${arg#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $(printf '%q' "$arg")" ;;
  esac
done

# An integer in [lo, hi], without leading zeros or signs.
int_in() {  # name value lo hi
  [[ "$2" =~ ^(0|[1-9][0-9]{0,5})$ ]] && (( $2 >= $3 && $2 <= $4 )) ||
    die "--$1=$(printf '%q' "$2"): must be an integer in [$3, $4]"
}
int_in ranks "$ranks" 2 16
int_in steps "$steps" 1 1000
int_in warmup "$warmup" 0 100
int_in threads "$threads" 1 64
[[ "$batch_size" == 0 ]] || int_in batch_size "$batch_size" 1 4096
[[ "$resize" == 0 ]] || int_in resize "$resize" 8 512
[[ "$rate" == none || "$rate" =~ ^[1-9][0-9]{0,5}(mbit|gbit)$ ]] ||
  die "--rate=$(printf '%q' "$rate"): none, or <n>mbit or <n>gbit"
[[ "$delay_ms" =~ ^(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?$ ]] &&
  (( ${delay_ms%.*} < 1000 )) || [[ "$delay_ms" =~ ^1000(\.0{1,3})?$ ]] ||
  die "--delay_ms=$(printf '%q' "$delay_ms"): a number of ms in [0, 1000], e.g. 0.5"
[[ "$model" =~ ^[a-z][a-z0-9_]{0,31}$ ]] ||
  die "--model=$(printf '%q' "$model"): a zoo model name ([a-z][a-z0-9_]*)"
[[ "$mode" =~ ^(ddp|no_allreduce|allreduce_only)$ ]] ||
  die "--mode=$(printf '%q' "$mode"): ddp, no_allreduce or allreduce_only"
[[ "$overlap" =~ ^(on|off)$ ]] || die "--overlap: on or off"
[[ "$bf16" =~ ^(on|off)$ ]] || die "--bf16_compress: on or off"
[[ "$bucket_mb" =~ ^(0|[1-9][0-9]{0,4})(\.[0-9]{1,3})?$ && "$bucket_mb" != 0 ]] ||
  die "--bucket_mb=$(printf '%q' "$bucket_mb"): a positive number, e.g. 25"
[[ "$subnet" =~ ^10\.([0-9]{1,3})\.([0-9]{1,3})$ ]] &&
  (( BASH_REMATCH[1] <= 255 && BASH_REMATCH[2] <= 255 )) ||
  die "--subnet=$(printf '%q' "$subnet"): 10.A.B with A, B in 0..255"
case "$iallreduce" in
  auto) nbc_algorithm=0 ;; ring) nbc_algorithm=1 ;; binomial) nbc_algorithm=2 ;;
  rabenseifner) nbc_algorithm=3 ;; recursive_doubling) nbc_algorithm=4 ;;
  *) die "--iallreduce=$(printf '%q' "$iallreduce"): auto, ring, binomial, rabenseifner or recursive_doubling" ;;
esac
if [[ -z "$binary" ]]; then
  binary="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bazel-bin/bench/ddp_step"
fi
[[ "$binary" != *[[:space:]]* ]] || die "--binary: no spaces in the path, please"
binary=$(realpath -e -- "$binary" 2>/dev/null) ||
  die "--binary: not found (bazel build //bench:ddp_step)"
[[ -f "$binary" && -x "$binary" ]] || die "--binary=$binary: not an executable file"
# The delay line: the path is checked here, the file only where it is used
# (--delay_ms > 0 without netem).
delay_line_given=1
if [[ -z "$delay_line" ]]; then
  delay_line_given=0
  delay_line="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bazel-bin/bench/delay_line"
fi
[[ "$delay_line" != *[[:space:]]* ]] || die "--delay_line: no spaces in the path, please"
if delay_line_path=$(realpath -e -- "$delay_line" 2>/dev/null) &&
   [[ -f "$delay_line_path" && -x "$delay_line_path" ]]; then
  delay_line=$delay_line_path
elif [[ "$delay_line_given" == 1 ]]; then
  die "--delay_line=$(printf '%q' "$delay_line"): not an executable file (bazel build //bench:delay_line)"
else
  delay_line=""  # not built: said below if it is needed
fi
# The launch watchdog's wait (see "Launch watchdog" below).
startup_s=${NETNS_MPI_STARTUP_S:-30}
[[ "$startup_s" =~ ^[1-9][0-9]{0,2}$ ]] || die "NETNS_MPI_STARTUP_S=$(printf '%q' "$startup_s"): seconds, 1..999"

# --- Can we? ------------------------------------------------------------------
prefix="dvn$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
cannot() {
  echo "netns_mpi: SKIPPED: cannot build network namespaces here: $*" >&2
  exit 77
}
[[ "$(id -u)" == 0 ]] || cannot "not root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)"
# A root tool by absolute path: from a fixed list of system directories
# first, which a strict PATH may leave out (Bazel's test environment has
# /bin:/usr/bin:/usr/local/bin, and Debian keeps tc in /sbin and /usr/sbin
# only), then from PATH for other layouts. The path must be plain (letters,
# digits, / . _ -): the agent below embeds ip's.
find_tool() {
  local found="" dir
  for dir in /usr/sbin /sbin /usr/bin /bin; do
    if [[ -f "$dir/$1" && -x "$dir/$1" ]]; then found="$dir/$1"; break; fi
  done
  [[ -n "$found" ]] || found=$(command -v -- "$1" 2>/dev/null) || return 1
  [[ "$found" =~ ^/[A-Za-z0-9/._-]+$ && -f "$found" && -x "$found" ]] || return 1
  echo "$found"
}
ip_cmd=$(find_tool ip) || cannot "ip not installed (iproute2)"
tc_cmd=$(find_tool tc) || cannot "tc not installed (iproute2)"
command -v mpirun >/dev/null || cannot "mpirun not installed (openmpi-bin)"
# Optional: the delay line's iptables and the RTT check's ping.
iptables_cmd=$(find_tool iptables-legacy) || iptables_cmd=""
ping_cmd=$(find_tool ping) || ping_cmd=""

# --- Teardown: exactly what this run created -----------------------------------
namespaces=()  # in creation order
workdir=""
delay_pids=()  # the delay lines started, one per rank namespace
# Stops the delay lines (SIGTERM: each lets go of what it holds, unbinds its
# queue and prints its counters), by pid, and waits for them.
stop_delay_lines() {
  local pid
  for pid in "${delay_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${delay_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  delay_pids=()
}
cleanup() {
  local status=$? ns pid i
  trap - EXIT INT TERM
  stop_delay_lines
  for (( i = ${#namespaces[@]} - 1; i >= 0; i-- )); do
    ns=${namespaces[i]}
    # Processes left inside this run's namespace (an orted or rank after a
    # failure): ended by pid, then the namespace goes with its interfaces.
    for pid in $("$ip_cmd" netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in $("$ip_cmd" netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    "$ip_cmd" netns del "$ns" 2>/dev/null || echo "netns_mpi: warning: could not delete namespace $ns" >&2
  done
  [[ -n "$workdir" ]] && rm -rf -- "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

add_ns() {
  "$ip_cmd" netns add "$1" 2>/dev/null || return 1
  namespaces+=("$1")
  "$ip_cmd" -n "$1" link set lo up
}

workdir=$(mktemp -d /tmp/netns_mpi.XXXXXX)
add_ns "${prefix}s" || cannot "ip netns add failed (no /run/netns or no privilege, e.g. in a sandbox)"
if [[ "$check_only" == 1 ]]; then
  echo "netns_mpi: network namespaces work here"
  exit 0
fi

# --- The network ----------------------------------------------------------------
sw="${prefix}s" br="${prefix}br"
"$ip_cmd" -n "$sw" link add "$br" type bridge
"$ip_cmd" -n "$sw" addr add "$subnet.254/24" dev "$br"
"$ip_cmd" -n "$sw" link set "$br" up

# tbf: burst of 1 ms at the rate (at least 64 KiB, one GSO packet), queue up
# to 50 ms.
tbf_args=()
if [[ "$rate" != none ]]; then
  n=${rate%bit}; unit=${n: -1}; n=${n%?}  # validated digits, then m or g
  if [[ "$unit" == g ]]; then bps=$(( n * 1000000000 )); else bps=$(( n * 1000000 )); fi
  burst=$(( bps / 8 / 1000 )); (( burst >= 65536 )) || burst=65536
  tbf_args=(tbf rate "$rate" burst "$burst" latency 50ms)
fi
delay_shaped=none
[[ "$delay_ms" =~ ^0(\.0+)?$ ]] || delay_shaped=pending
netem_error="" no_delay_line=""

for (( i = 0; i < ranks; i++ )); do
  ns="${prefix}r$i" a="${prefix}a$i" b="${prefix}b$i"
  add_ns "$ns" || die "ip netns add $ns failed"
  "$ip_cmd" link add "$a" netns "$ns" type veth peer name "$b" netns "$sw"
  "$ip_cmd" -n "$ns" addr add "$subnet.$(( i + 1 ))/24" dev "$a"
  "$ip_cmd" -n "$ns" link set "$a" up
  "$ip_cmd" -n "$sw" link set "$b" master "$br"
  "$ip_cmd" -n "$sw" link set "$b" up
  # Rank -> switch: delay (netem, if any) with the rate under it.
  if [[ "$delay_shaped" != none ]] && [[ "$delay_shaped" != missing ]]; then
    if netem_error=$("$ip_cmd" netns exec "$ns" "$tc_cmd" qdisc add dev "$a" root handle 1: netem delay "${delay_ms}ms" 2>&1); then
      delay_shaped=yes
      [[ ${#tbf_args[@]} == 0 ]] || "$ip_cmd" netns exec "$ns" "$tc_cmd" qdisc add dev "$a" parent 1:1 handle 10: "${tbf_args[@]}"
    else
      delay_shaped=missing
    fi
  fi
  if [[ "$delay_shaped" != yes && ${#tbf_args[@]} != 0 ]]; then
    "$ip_cmd" netns exec "$ns" "$tc_cmd" qdisc add dev "$a" root "${tbf_args[@]}"
  fi
  # Switch -> rank: the rate.
  [[ ${#tbf_args[@]} == 0 ]] || "$ip_cmd" netns exec "$sw" "$tc_cmd" qdisc add dev "$b" root "${tbf_args[@]}"
done

# No netem: the delay line on each rank's ingress (see the top of this file
# for why ingress), started and bound before mpirun. The rule goes into the
# rank's own namespace, which takes it along when it is deleted.
if [[ "$delay_shaped" == missing ]]; then
  if [[ -z "$iptables_cmd" ]]; then
    no_delay_line="iptables-legacy not installed (Debian package iptables)"
  elif [[ -z "$delay_line" ]]; then
    no_delay_line="no delay_line binary (bazel build //bench:delay_line)"
  fi
fi
if [[ "$delay_shaped" == missing && -z "$no_delay_line" ]]; then
  for (( i = 0; i < ranks; i++ )); do
    ns="${prefix}r$i" a="${prefix}a$i"
    if ! rule_error=$("$ip_cmd" netns exec "$ns" "$iptables_cmd" -t mangle -A PREROUTING \
        -i "$a" -j NFQUEUE --queue-num "$i" 2>&1); then
      (( i == 0 )) || die "iptables-legacy in $ns: $rule_error"
      no_delay_line="iptables-legacy -j NFQUEUE failed: ${rule_error//$'\n'/ }"
      break
    fi
    log="$workdir/delay_line.$i"
    "$ip_cmd" netns exec "$ns" "$delay_line" "--queue=$i" "--delay_ms=$delay_ms" 2>"$log" &
    delay_pids+=("$!")
    # Bound once it says so (the packets of an unbound queue are dropped).
    for (( t = 0; t < 100; t++ )); do
      grep -q "^delay_line: queue $i, " "$log" && break
      kill -0 "${delay_pids[i]}" 2>/dev/null || die "the delay line in $ns: $(tr '\n' ' ' < "$log")"
      sleep 0.05
    done
    grep -q "^delay_line: queue $i, " "$log" || die "the delay line in $ns did not start"
  done
  [[ -n "$no_delay_line" ]] || delay_shaped=delay_line
fi

echo "netns_mpi: $ranks ranks in namespaces ${prefix}r0..${prefix}r$(( ranks - 1 )), star through bridge $br in ${prefix}s, subnet $subnet.0/24"
echo "netns_mpi: rate per link and direction: $rate${tbf_args:+ (tbf burst $burst B)}"
case "$delay_shaped" in
  none) echo "netns_mpi: delay: none requested" ;;
  yes) echo "netns_mpi: delay: ${delay_ms} ms one way per link (netem on each rank's egress)" ;;
  delay_line)
    echo "netns_mpi: delay: ${delay_ms} ms one way per link (userspace NFQUEUE delay line on each rank's ingress; no netem in this kernel)"
    echo "netns_mpi: delay line pids: ${delay_pids[*]}" ;;
  missing) echo "netns_mpi: delay: NOT SHAPED: --delay_ms=$delay_ms could not be applied, this kernel has no netem qdisc (tc: ${netem_error//$'\n'/ }) and $no_delay_line; the links have only the veth's own latency" ;;
esac
# The round trip rank 0 <-> rank 1 as it is now: user to user (-U), which
# includes the last hop's ingress delay.
if [[ -z "$ping_cmd" ]]; then
  echo "netns_mpi: measured RTT rank 0 -> rank 1: not measured (ping not installed: iputils-ping)"
elif ping_out=$("$ip_cmd" netns exec "${prefix}r0" "$ping_cmd" -U -n -q -c 5 -i 0.2 -W 2 "$subnet.2" 2>&1) &&
     [[ "$ping_out" =~ =\ ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+)\ ms ]]; then
  echo "netns_mpi: measured RTT rank 0 -> rank 1: avg ${BASH_REMATCH[2]} ms (min ${BASH_REMATCH[1]}, max ${BASH_REMATCH[3]}; ping -U, 5 packets)"
else
  echo "netns_mpi: measured RTT rank 0 -> rank 1: ping failed: ${ping_out//$'\n'/ }"
fi

# --- The launch -------------------------------------------------------------------
hostfile="$workdir/hosts" agent="$workdir/agent"
for (( i = 0; i < ranks; i++ )); do echo "${prefix}r$i slots=1"; done > "$hostfile"
# Open MPI calls the agent as `agent <host> <orted command line>`, the
# command line being one string for a remote shell (as ssh would run it).
# The host must be one of this run's rank namespaces.
cat > "$agent" <<EOF
#!/bin/sh
host=\$1
shift
case "\$host" in
  ${prefix}r[0-9]|${prefix}r[0-9][0-9]) ;;
  *) echo "netns_mpi agent: refusing host '\$host'" >&2; exit 1 ;;
esac
# The launch watchdog's test (NETNS_MPI_TEST_LOSE_DAEMON=1): rank 0's first
# daemon never starts.
if [ "\$host" = "${prefix}r0" ] && rm "$workdir/lose_daemon" 2>/dev/null; then
  exec sleep 600
fi
exec "$ip_cmd" netns exec "\$host" /bin/sh -c "\$*"
EOF
chmod 700 "$agent"
[[ "${NETNS_MPI_TEST_LOSE_DAEMON:-0}" != 1 ]] || : > "$workdir/lose_daemon"

flags=(
  "--model=$model" "--mode=$mode" "--steps=$steps" "--warmup=$warmup"
  "--threads=$threads" "--batch_size=$batch_size" "--resize=$resize"
  "--ddp_bucket_mb=$bucket_mb"
  "--ddp_overlap=$([[ $overlap == on ]] && echo true || echo false)"
  "--ddp_bf16_compress=$([[ $bf16 == on ]] && echo true || echo false)"
)
echo "netns_mpi: ranks get $threads thread(s) each; MPI_Iallreduce algorithm: $iallreduce; ddp_step ${flags[*]}"
# ASan builds (the test under --config=asan): Open MPI's allocations outlive
# MPI_Finalize, as distributed/testing.h explains.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
launch() {
  "$ip_cmd" netns exec "$sw" mpirun --allow-run-as-root \
    --hostfile "$hostfile" -np "$ranks" --map-by node --bind-to none \
    --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca pml ob1 --mca btl tcp,self \
    --mca coll_libnbc_iallreduce_algorithm "$nbc_algorithm" \
    --mca btl_tcp_if_include "$subnet.0/24" --mca oob_tcp_if_include "$subnet.0/24" \
    -x ASAN_OPTIONS \
    "$binary" "${flags[@]}"
}
# Launch watchdog. Rarely (2 of some 40 runs here, both with a delay
# line), a rank namespace's Open MPI daemon never comes up and mpirun waits
# for it forever (its orte_startup_timeout does not fire for rsh launches).
# So: while mpirun runs, every rank namespace must hold a process of the job
# (its orted, then the rank) within NETNS_MPI_STARTUP_S seconds (default
# 30); if one does not, the launch is killed (with everything in the rank
# namespaces) and made again, once. A job that started and then fails is
# not relaunched.
# The pids of the job's processes in namespace $1: all but the delay lines.
job_pids() {
  "$ip_cmd" netns pids "$1" 2>/dev/null | grep -v -x -F -f <(printf '%s\n' "${delay_pids[@]}" 0) || true
}
for attempt in 1 2; do
  status=0
  launch & job=$!
  started=0
  for (( waited = 0; waited < startup_s * 10; waited++ )); do
    kill -0 "$job" 2>/dev/null || break
    missing=""
    for (( i = 0; i < ranks; i++ )); do
      [[ -n $(job_pids "${prefix}r$i") ]] || missing+=" $i"
    done
    if [[ -z "$missing" ]]; then started=1; break; fi
    sleep 0.1
  done
  if (( started )) || ! kill -0 "$job" 2>/dev/null; then
    wait "$job" || status=$?
    break
  fi
  echo "netns_mpi: launch attempt $attempt: no process of the job came up in rank namespace(s)$missing within ${startup_s} s (an Open MPI daemon that never started); killing it" >&2
  kill -TERM "$job" 2>/dev/null || true
  "$ip_cmd" netns pids "$sw" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  for (( i = 0; i < ranks; i++ )); do
    job_pids "${prefix}r$i" | xargs -r kill -KILL 2>/dev/null || true
  done
  wait "$job" 2>/dev/null || true
  status=1
  (( attempt == 1 )) && echo "netns_mpi: launching again" >&2
done
# What each rank's veth sent, the whole job (launch, broadcast, warm-up and
# timed steps): traffic that went through the shaped links.
for (( i = 0; i < ranks; i++ )); do
  tx=$("$ip_cmd" netns exec "${prefix}r$i" cat "/sys/class/net/${prefix}a$i/statistics/tx_bytes")
  echo "netns_mpi: rank $i's link sent $tx bytes"
done
if (( ${#delay_pids[@]} )); then
  stop_delay_lines
  for (( i = 0; i < ranks; i++ )); do
    counters=$(sed -n 's/^delay_line: queue [0-9]*: //p' "$workdir/delay_line.$i")
    echo "netns_mpi: rank $i's delay line: ${counters:-no counters}"
  done
fi
exit "${status:-0}"
