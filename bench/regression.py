#!/usr/bin/env python3
"""Quick speed-regression check for CI (.ci/run, step `bench`).

    bazel build //bench:gemm_benchmark //bench:kernel_benchmark //bench:model_benchmark
    python3 bench/regression.py                 # check against bench/baseline.json
    python3 bench/regression.py --update        # re-measure the baseline

Runs a small subset of the benchmarks (single-threaded; about 20 s in all)
and divides each one's speed by BM_PeakFma/1, the register-only FMA peak of
one core (bench/peak_fma.h), measured by the same binary in the same run. The
ratio says how close to the machine's peak the kernel runs, so it hardly
depends on how fast or how busy the machine is. Each benchmark and the peak
run --reps times, randomly interleaved; the best repetition of each counts
(a busy machine only ever makes things slower).

A benchmark fails when its ratio falls below --threshold (default 0.5) times
the ratio in bench/baseline.json: machines are noisy, so only a clear
regression (2x slower) fails. One line per benchmark, "ok" or "REGRESSION"
(or "MISSING" when it did not run or has no baseline), then a summary line;
the exit status is 1 when any benchmark failed.

Stdlib only; any python3 works.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(REPO, "bench", "baseline.json")
PEAK = "BM_PeakFma/1"

# (binary, benchmark name without the /real_time suffix, counter = speed)
CHECKS = [
    ("gemm_benchmark", "BM_Gemm/n:256/threads:1", "FLOPS"),
    ("gemm_benchmark", "BM_Gemm/n:512/threads:1", "FLOPS"),
    ("gemm_benchmark", "BM_GemmNT/m:64/n:576/k:576", "FLOPS"),
    ("kernel_benchmark", "BM_Conv2dForward/lenet_conv2/threads:1", "FLOPS"),
    ("kernel_benchmark", "BM_Conv2dBackwardWeight/lenet_conv2/threads:1",
     "FLOPS"),
    ("kernel_benchmark", "BM_Conv2dBackwardInput/resnet96_b5/threads:1",
     "FLOPS"),
    ("kernel_benchmark", "BM_AvgPool2dForward/lenet_pool1/threads:1",
     "bytes_per_second"),
    ("kernel_benchmark", "BM_BatchNormTrainForward/bn_lenet_conv1/threads:1",
     "bytes_per_second"),
    ("model_benchmark", "BM_TrainStep/lenet/threads:1", "items_per_second"),
]


def run_binary(path, names, reps, min_time):
    """Best speed of each benchmark in `names` (and PEAK) by counter name:
    {name: {counter: best value}}."""
    pattern = ("^(" + "|".join(re.escape(n) for n in [PEAK] + names) +
               ")(/real_time)?$")
    cmd = [path, f"--benchmark_filter={pattern}", "--benchmark_format=json",
           f"--benchmark_min_time={min_time}",
           f"--benchmark_repetitions={reps}",
           "--benchmark_enable_random_interleaving=true"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    best = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration" or b.get("error_occurred"):
            continue
        name = b["run_name"]
        if name.endswith("/real_time"):
            name = name[:-len("/real_time")]
        slot = best.setdefault(name, {})
        for key, value in b.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                slot[key] = max(slot.get(key, value), value)
    return best


def measure(bin_dir, reps, min_time):
    """{benchmark name: ratio to PEAK} for every check that ran."""
    ratios, details = {}, {}
    for binary in dict.fromkeys(c[0] for c in CHECKS):
        path = os.path.join(bin_dir, binary)
        if not os.access(path, os.X_OK):
            print(f"MISSING     {path} (build it with bazel build //bench:{binary})")
            continue
        names = [c[1] for c in CHECKS if c[0] == binary]
        best = run_binary(path, names, reps, min_time)
        peak = best.get(PEAK, {}).get("FLOPS")
        for b, name, counter in CHECKS:
            if b != binary or name not in best or not peak:
                continue
            value = best[name].get(counter)
            if value:
                ratios[name] = value / peak
                details[name] = (value, counter, peak)
    return ratios, details


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def fmt_rate(value, counter):
    unit = {"FLOPS": "FLOP/s", "bytes_per_second": "B/s",
            "items_per_second": "examples/s"}.get(counter, counter)
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir",
                   help="where the benchmark binaries are (default: "
                        "`bazel info bazel-bin`/bench; the bazel-bin symlink "
                        "follows whichever --config ran last)")
    p.add_argument("--baseline", default=BASELINE)
    p.add_argument("--threshold", type=float, default=0.5,
                   help="fail below this fraction of the baseline ratio")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min_time", type=float, default=0.1,
                   help="--benchmark_min_time per repetition (seconds)")
    p.add_argument("--update", action="store_true",
                   help="write the measured ratios to --baseline")
    args = p.parse_args(argv)

    if not args.bin_dir:
        args.bin_dir = os.path.join(subprocess.run(
            ["bazel", "info", "bazel-bin"], check=True, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True).stdout.strip(), "bench")
    start = time.time()
    ratios, details = measure(args.bin_dir, args.reps, args.min_time)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])

    if args.update:
        baseline = {
            "comment": "Speed of each benchmark divided by BM_PeakFma/1 of the "
                       "same run (best of --reps). Written by "
                       "`python3 bench/regression.py --update`.",
            "machine": f"{cpu_model()}, {os.cpu_count()} cores, "
                       f"load average {load}",
            "ratios": {name: float(f"{ratios[name]:.4g}") for _, name, _ in CHECKS
                       if name in ratios},
        }
        with open(args.baseline, "w") as f:
            json.dump(baseline, f, indent=2)
            f.write("\n")
        for name, r in baseline["ratios"].items():
            value, counter, peak = details[name]
            print(f"baseline    {name:<52} ratio {r:.4g} "
                  f"({fmt_rate(value, counter)}; peak {fmt_rate(peak, 'FLOPS')})")
        print(f"wrote {args.baseline} ({time.time() - start:.0f}s, "
              f"load average {load})")
        return 0 if len(ratios) == len(CHECKS) else 1

    with open(args.baseline) as f:
        baseline = json.load(f)["ratios"]
    ok = failed = 0
    for _, name, _ in CHECKS:
        if name not in ratios:
            print(f"MISSING     {name}: did not run")
            failed += 1
            continue
        if name not in baseline:
            print(f"MISSING     {name}: no baseline (run with --update)")
            failed += 1
            continue
        value, counter, peak = details[name]
        rel = ratios[name] / baseline[name]
        status = "ok" if rel >= args.threshold else "REGRESSION"
        if status == "ok":
            ok += 1
        else:
            failed += 1
        note = (f"{1 / rel:.2f}x slower than baseline" if rel < 1
                else f"{rel:.2f}x faster than baseline")
        print(f"{status:<11} {name:<52} {rel:5.2f}x baseline ({note}; "
              f"{fmt_rate(value, counter)}, peak {fmt_rate(peak, 'FLOPS')})")
    print(f"bench: {ok} ok, {failed} failed (threshold {args.threshold}x "
          f"baseline, {time.time() - start:.0f}s, load average {load})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
