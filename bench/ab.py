#!/usr/bin/env python3
"""A/B speed check of two builds of the benchmarks on this CPU, in one run.

    python3 -m bench.ab --base_bin_dir=OLD/bench --head_bin_dir=NEW/bench

(bench/ab_check.sh builds the parent commit's binaries beside this tree's
and runs this; .ci/run's bench step calls it.) Needs no stored baseline, so
it works on every CPU, where bench/regression.py needs one per CPU kind.

Runs the same benchmarks as bench/regression.py (CHECKS), single-threaded,
for --rounds rounds; each round runs every binary of both builds once, in an
order that alternates between rounds (ABBA), so that a machine whose speed
drifts (turbo, a neighbour's load) slows both builds alike. Each benchmark
then has one speed sample per round from each build: the best of --reps
repetitions (a busy machine only ever makes a repetition slower), as a rate
per second of CPU time (see run_once).

A benchmark fails when the head build is slower than the base build by
--slowdown (10%) or more, significantly: a one-sided Mann-Whitney U test of
"head < (1 - slowdown) x base" over the samples, at --alpha (0.01). The test
is exact (every arrangement of the ranks counted) and assumes nothing about
the distribution of the timings; with 10 rounds the smallest p-value it can
give is 1/184756, so a clear slowdown is found even when a few samples are
noisy, and an unchanged tree passes unless noise alone puts nearly every
head sample 10% below every base sample.

One line per benchmark, "ok" or "REGRESSION" (or "new" for one the base
build lacks), then a summary line; exits 1 when any benchmark regressed.
Stdlib only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from bench import regression


def u_statistic(xs, ys):
    """Mann-Whitney U of xs against ys: the pairs with x > y, ties half."""
    return sum((x > y) + 0.5 * (x == y) for x in xs for y in ys)


def u_cdf(u, n, m):
    """P(U <= u) for samples of sizes n and m drawn from one distribution:
    the fraction of the C(n + m, n) rank orders whose U is at most u."""
    # counts[j][k]: the orders of j x's and i y's with U = k, for i = 0, 1,
    # ..., m in turn. The largest of them is an x, which beats all i y's
    # (orders of j - 1 x's and i y's, U shifted by i), or a y, which beats
    # nothing (orders of j x's and i - 1 y's).
    counts = [[1] for _ in range(n + 1)]  # i = 0: U = 0 only
    for i in range(1, m + 1):
        new = [[1]]  # j = 0 x's: U = 0
        for j in range(1, n + 1):
            # The largest of j x's and i y's is an x (it beats all i y's)
            # or a y (it beats nothing).
            a, b = counts[j], new[j - 1]
            size = max(len(b) + i, len(a))
            row = [0] * size
            for k, c in enumerate(a):
                row[k] += c
            for k, c in enumerate(b):
                row[k + i] += c
            new.append(row)
        counts = new
    dist = counts[n]
    total = sum(dist)
    return sum(c for k, c in enumerate(dist) if k <= u) / total


def slower_p_value(head, base, slowdown):
    """One-sided p-value of "head is below (1 - slowdown) x base"."""
    scaled = [(1 - slowdown) * b for b in base]
    return u_cdf(u_statistic(head, scaled), len(head), len(scaled))


def run_once(path, checks, min_time, reps=1):
    """{check name: speed} of one run of binary `path` over `checks`: each
    check's counter per second of the benchmark thread's CPU time, the best
    of `reps` repetitions. CPU time, not wall time: a neighbour that takes
    the core away for a while stretches the wall time alone, so the A/B
    comparison holds on a busy machine too (the checks are
    single-threaded)."""
    names = [c[1] for c in checks]
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")(/real_time)?$"
    out = subprocess.run(
        [path, f"--benchmark_filter={pattern}", "--benchmark_format=json",
         f"--benchmark_min_time={min_time}",
         f"--benchmark_repetitions={reps}"],
        check=True, stdout=subprocess.PIPE, text=True).stdout
    counters = {c[1]: c[2] for c in checks}
    best = {}
    for b in json.loads(out)["benchmarks"]:
        name = b.get("run_name", "")
        name = name[:-len("/real_time")] if name.endswith("/real_time") else name
        if (b.get("run_type") != "iteration" or b.get("error_occurred") or
                name not in counters or not b.get("cpu_time")):
            continue
        speed = b.get(counters[name], 0) * b["real_time"] / b["cpu_time"]
        best[name] = max(best.get(name, 0), speed)
    return best


def measure(checks, dirs, rounds, min_time, reps):
    """{(build, check name): [speed per round]} for builds "base", "head"."""
    samples = {}
    binaries = list(dict.fromkeys(c[0] for c in checks))
    for r in range(rounds):
        order = ["base", "head"] if r % 2 == 0 else ["head", "base"]
        for binary in binaries:
            mine = [c for c in checks if c[0] == binary]
            for build in order:
                path = os.path.join(dirs[build], binary)
                if not os.access(path, os.X_OK):
                    continue
                got = run_once(path, mine, min_time, reps)
                for name, speed in got.items():
                    if speed > 0:
                        samples.setdefault((build, name), []).append(speed)
    return samples


def judge(checks, samples, rounds, slowdown, alpha):
    """Prints one line per check; returns (ok, failed)."""
    ok = failed = 0
    for _, name, counter, _ in checks:
        head = samples.get(("head", name), [])
        base = samples.get(("base", name), [])
        if len(head) != rounds:
            print(f"MISSING     {name}: ran {len(head)} of {rounds} rounds "
                  f"in the head build")
            failed += 1
            continue
        if len(base) != rounds:
            print(f"new         {name}: not in the base build, not compared")
            continue
        ratio = statistics.median(head) / statistics.median(base)
        p = slower_p_value(head, base, slowdown)
        bad = p < alpha
        status = "REGRESSION" if bad else "ok"
        ok, failed = ok + (not bad), failed + bad
        print(f"{status:<11} {name:<52} head/base {ratio:5.3f} "
              f"(p {p:.2g} of {100 * slowdown:.0f}%+ slower; head "
              f"{regression.fmt_rate(statistics.median(head), counter)} "
              f"of CPU time)")
    return ok, failed


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base_bin_dir", required=True,
                   help="the base build's bench/ directory")
    p.add_argument("--head_bin_dir", required=True,
                   help="the head build's bench/ directory")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--min_time", type=float, default=0.05,
                   help="--benchmark_min_time of each repetition (seconds)")
    p.add_argument("--reps", type=int, default=3,
                   help="repetitions per sample, the best kept")
    p.add_argument("--slowdown", type=float, default=0.10,
                   help="the slowdown that fails when significant")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--cpuinfo", default="/proc/cpuinfo")
    args = p.parse_args(argv)
    if args.rounds < 2:
        p.error("--rounds must be at least 2")
    if not 0 < args.slowdown < 1:
        p.error("--slowdown must be in (0, 1)")

    _, cpu, flags = regression.read_cpu(args.cpuinfo)
    print(f"cpu: {cpu}; {args.rounds} rounds, base and head alternating")
    checks = regression.applicable(flags)
    start = time.time()
    samples = measure(checks, {"base": args.base_bin_dir,
                               "head": args.head_bin_dir},
                      args.rounds, args.min_time, args.reps)
    ok, failed = judge(checks, samples, args.rounds, args.slowdown,
                       args.alpha)
    print(f"ab: {ok} ok, {failed} failed ({time.time() - start:.0f}s; a "
          f"benchmark fails when {100 * args.slowdown:.0f}% or more slower "
          f"at p < {args.alpha})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
