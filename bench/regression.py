#!/usr/bin/env python3
"""Quick speed-regression check for CI (.ci/run, step `bench`).

    bazel build //bench:gemm_benchmark //bench:kernel_benchmark //bench:model_benchmark
    python3 bench/regression.py                     # check this CPU's baseline
    python3 bench/regression.py --update --runs 10  # record it (quiet machine)

Runs a small subset of the benchmarks (single-threaded, about 15 s) and divides
each one's speed by the peak of its kind, measured by the same binary in the
same run (tensor/peak/peak.h):

  * compute-bound kernels (GEMM, convolution, a training step) by
    BM_PeakFma/1, the register-only FMA peak of one core, and the bf16 GEMM
    by BM_PeakBf16/1, the VDPBF16PS peak (CPUs with AVX512-BF16; elsewhere
    its checks print "skipped: no AVX512-BF16");
  * memory-bound kernels (pooling, batch norm) by BM_PeakTriad, a STREAM
    triad over the same few MB they stream.

Each benchmark and the peaks run --reps times, randomly interleaved; the best
repetition of each counts (a busy machine only ever makes things slower).

Baselines are kept per CPU, in bench/baselines/<cpu key>.json: the key is the
CPU's model name, family and model number, and the features that pick
kernels (AVX2, AVX-512, AVX512-BF16, AMX), e.g. `amd-epyc-f25m1_avx2`. Even
ratios to peak differ between cores (a GEMM reaches 0.86 of the FMA peak on
one, 0.68 on another), so a machine is only compared with its own kind. On a
CPU with no baseline the check prints what it measured and the command that
records a baseline, and passes, saying so.

`--update --runs N` measures N times and records, per benchmark, the median
ratio, the spread of the N runs ((max - min) / median) and the threshold: the
fraction of the baseline below which the check fails, 1 - 3 x spread, capped
to [0.5, 0.85] (so a 30% slowdown fails wherever the noise allows it).

One line per benchmark, "ok" or "REGRESSION" (or "MISSING" when it did not
run), then a summary line; the exit status is 1 when any benchmark failed.

Stdlib only; any python3 works.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE_DIR = os.path.join(REPO, "bench", "baselines")

# Peak kind: (benchmark, counter).
PEAKS = {
    "fma": ("BM_PeakFma/1", "FLOPS"),
    "bf16": ("BM_PeakBf16/1", "FLOPS"),
    "triad": ("BM_PeakTriad/6291456", "bytes_per_second"),
}

# (binary, benchmark name without the /real_time suffix, counter = speed,
#  peak kind)
CHECKS = [
    ("gemm_benchmark", "BM_Gemm/n:256/threads:1", "FLOPS", "fma"),
    ("gemm_benchmark", "BM_Gemm/n:512/threads:1", "FLOPS", "fma"),
    ("gemm_benchmark", "BM_GemmNT/m:64/n:576/k:576", "FLOPS", "fma"),
    ("gemm_benchmark", "BM_GemmBf16/n:512/threads:1", "FLOPS", "bf16"),
    ("gemm_benchmark", "BM_GemmNTBf16/m:64/n:576/k:576", "FLOPS", "bf16"),
    ("kernel_benchmark", "BM_Conv2dForward/lenet_conv2/threads:1", "FLOPS",
     "fma"),
    ("kernel_benchmark", "BM_Conv2dBackwardWeight/lenet_conv2/threads:1",
     "FLOPS", "fma"),
    ("kernel_benchmark", "BM_Conv2dBackwardInput/resnet96_b5/threads:1",
     "FLOPS", "fma"),
    ("kernel_benchmark", "BM_AvgPool2dForward/lenet_pool1/threads:1",
     "bytes_per_second", "triad"),
    ("kernel_benchmark", "BM_BatchNormTrainForward/bn_lenet_conv1/threads:1",
     "bytes_per_second", "triad"),
    ("model_benchmark", "BM_TrainStep/lenet/threads:1", "items_per_second",
     "fma"),
]

# /proc/cpuinfo flag -> the name the key uses, for the features that choose
# kernels.
FEATURES = [("avx2", "avx2"), ("avx512f", "avx512"),
            ("avx512_bf16", "avx512bf16"), ("amx_bf16", "amx")]

# Peak kind -> (/proc/cpuinfo flag it needs, the name it is skipped by).
REQUIRES = {"bf16": ("avx512_bf16", "AVX512-BF16")}

MIN_THRESHOLD, MAX_THRESHOLD = 0.5, 0.85


def read_cpu(path):
    """(key, description, flags) of the first CPU in a /proc/cpuinfo-format
    file."""
    info = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                if info:
                    break
                continue
            name, _, value = line.partition(":")
            info[name.strip()] = value.strip()
    model = info.get("model name", "unknown cpu")
    flags = set(info.get("flags", "").split())
    features = [short for flag, short in FEATURES if flag in flags]
    # "Intel(R) Xeon(R) Platinum 8480+ @ 2.0GHz" -> "intel-xeon-platinum-8480"
    slug = re.sub(r"\((r|tm)\)|\bcpu\b|@.*$", " ", model.lower())
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-") or "unknown"
    family, number = info.get("cpu family", "?"), info.get("model", "?")
    key = f"{slug}-f{family}m{number}_{'-'.join(features) or 'generic'}"
    description = (f"{model} (family {family}, model {number}; "
                   f"{', '.join(features) or 'no AVX2'})")
    return key, description, flags


def applicable(flags):
    """The checks this CPU can run, after a "skipped" line for each other."""
    checks = []
    for c in CHECKS:
        flag, name = REQUIRES.get(c[3], (None, None))
        if flag is None or flag in flags:
            checks.append(c)
        else:
            print(f"skipped     {c[1]}: no {name}")
    return checks


def parse_benchmarks(text):
    """Best value of each counter of each benchmark in Google Benchmark's
    JSON output: {name: {counter: best value}}."""
    best = {}
    for b in json.loads(text)["benchmarks"]:
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


def run_benchmarks(checks, bin_dir, reps, min_time):
    """One measurement of every check and peak: {name: {counter: best}}."""
    best = {}
    peaks = [PEAKS[kind][0] for kind in dict.fromkeys(c[3] for c in checks)]
    for binary in dict.fromkeys(c[0] for c in checks):
        path = os.path.join(bin_dir, binary)
        if not os.access(path, os.X_OK):
            print(f"MISSING     {path} (build it with bazel build "
                  f"//bench:{binary})")
            continue
        names = peaks + [c[1] for c in checks if c[0] == binary]
        pattern = "^(" + "|".join(re.escape(n) for n in names) + ")(/real_time)?$"
        out = subprocess.run(
            [path, f"--benchmark_filter={pattern}", "--benchmark_format=json",
             f"--benchmark_min_time={min_time}",
             f"--benchmark_repetitions={reps}",
             "--benchmark_enable_random_interleaving=true"],
            check=True, stdout=subprocess.PIPE, text=True).stdout
        # Each binary measures the peaks again: its checks are divided by
        # its own, measured among them.
        for name, counters in parse_benchmarks(out).items():
            best[f"{binary}:{name}"] = counters
    return best


def ratios_of(checks, best):
    """{check name: (ratio to its peak, speed, counter, peak, peak counter)}."""
    ratios = {}
    for binary, name, counter, kind in checks:
        peak_name, peak_counter = PEAKS[kind]
        value = best.get(f"{binary}:{name}", {}).get(counter)
        peak = best.get(f"{binary}:{peak_name}", {}).get(peak_counter)
        if value and peak:
            ratios[name] = (value / peak, value, counter, peak, peak_counter)
    return ratios


def fmt_rate(value, counter):
    unit = {"FLOPS": "FLOP/s", "bytes_per_second": "B/s",
            "items_per_second": "examples/s"}.get(counter, counter)
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.2f} {unit}"


def describe(entry):
    _, value, counter, peak, peak_counter = entry
    return f"{fmt_rate(value, counter)}; peak {fmt_rate(peak, peak_counter)}"


def threshold_for(spread):
    return round(min(MAX_THRESHOLD, max(MIN_THRESHOLD, 1 - 3 * spread)), 2)


def update(checks, runs, path, cpu, load):
    """Writes the baseline of `runs` (a list of ratios_of results)."""
    benchmarks = {}
    for _, name, _, _ in checks:
        values = [r[name][0] for r in runs if name in r]
        if len(values) != len(runs):
            print(f"MISSING     {name}: did not run")
            continue
        median = statistics.median(values)
        spread = (max(values) - min(values)) / median
        benchmarks[name] = {"ratio": float(f"{median:.4g}"),
                            "spread": round(spread, 4),
                            "threshold": threshold_for(spread)}
        print(f"baseline    {name:<52} ratio {median:.4g}, spread "
              f"{100 * spread:.1f}% over {len(values)} runs, threshold "
              f"{benchmarks[name]['threshold']:.2f} ({describe(runs[-1][name])})")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"cpu": cpu, "runs": len(runs),
                   "machine": f"{os.cpu_count()} cores, load average {load}",
                   "comment": "ratio: median speed / peak of its kind; "
                              "spread: (max - min) / median; threshold: the "
                              "fraction of ratio below which the check "
                              "fails. Written by `python3 "
                              "bench/regression.py --update`.",
                   "benchmarks": benchmarks}, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")
    return 0 if len(benchmarks) == len(checks) else 1


def check(checks, ratios, baseline, threshold_override):
    ok = failed = 0
    for _, name, _, _ in checks:
        base = baseline.get(name)
        if name not in ratios or base is None:
            why = "did not run" if name not in ratios else "not in the baseline"
            print(f"MISSING     {name}: {why} (re-record with --update)")
            failed += 1
            continue
        threshold = threshold_override or base["threshold"]
        rel = ratios[name][0] / base["ratio"]
        if rel >= threshold:
            status, ok = "ok", ok + 1
        else:
            status, failed = "REGRESSION", failed + 1
        note = (f"{1 / rel:.2f}x slower" if rel < 1 else f"{rel:.2f}x faster")
        print(f"{status:<11} {name:<52} {rel:5.2f}x baseline, fails below "
              f"{threshold:.2f} ({note}; {describe(ratios[name])})")
    return ok, failed


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin_dir",
                   help="where the benchmark binaries are (default: "
                        "`bazel info bazel-bin`/bench; the bazel-bin symlink "
                        "follows whichever --config ran last)")
    p.add_argument("--baseline_dir", default=BASELINE_DIR)
    p.add_argument("--cpuinfo", default="/proc/cpuinfo",
                   help="the CPU description the baseline is chosen by")
    p.add_argument("--results", action="append", default=[],
                   help="Google Benchmark JSON output of all three binaries "
                        "(names prefixed 'binary:') to use instead of running "
                        "them; one file per run (for testing the checker)")
    p.add_argument("--threshold", type=float,
                   help="fail below this fraction of the baseline for every "
                        "benchmark (default: each benchmark's own)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min_time", type=float, default=0.1,
                   help="--benchmark_min_time per repetition (seconds)")
    p.add_argument("--update", action="store_true",
                   help="record this CPU's baseline from --runs runs")
    p.add_argument("--runs", type=int, default=1,
                   help="with --update: measurements to take the median and "
                        "spread of (10 on a quiet machine)")
    args = p.parse_args(argv)

    key, cpu, flags = read_cpu(args.cpuinfo)
    path = os.path.join(args.baseline_dir, key + ".json")
    print(f"cpu: {cpu}; baseline {os.path.relpath(path, REPO)}")
    checks = applicable(flags)
    start = time.time()
    if args.results:
        measurements = []
        for name in args.results:
            with open(name) as f:
                measurements.append(parse_benchmarks(f.read()))
    else:
        if not args.bin_dir:
            args.bin_dir = os.path.join(subprocess.run(
                ["bazel", "info", "bazel-bin"], check=True, cwd=REPO,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True).stdout.strip(), "bench")
        measurements = [run_benchmarks(checks, args.bin_dir, args.reps,
                                       args.min_time)
                        for _ in range(args.runs if args.update else 1)]
    runs = [ratios_of(checks, m) for m in measurements]
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])

    if args.update:
        return update(checks, runs, path, cpu, load)

    if not os.path.exists(path):
        for _, name, _, _ in checks:
            if name in runs[0]:
                print(f"measured    {name:<52} ratio {runs[0][name][0]:.4g} "
                      f"({describe(runs[0][name])})")
        print(f"bench: no baseline for this CPU ({key}): nothing compared, "
              f"passing. Record one on a quiet machine with: python3 "
              f"bench/regression.py --update --runs 10")
        return 0
    with open(path) as f:
        baseline = json.load(f)["benchmarks"]
    ok, failed = check(checks, runs[0], baseline, args.threshold)
    print(f"bench: {ok} ok, {failed} failed ({time.time() - start:.0f}s, "
          f"load average {load})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
