#!/usr/bin/env python3
"""Whole-model speed of two builds of bench/throughput, alternating.

    python3 bench/ab_throughput.py OLD_BIN NEW_BIN nin,googlenet [REPS]
    MODES=infer PRECISIONS=bf16 python3 bench/ab_throughput.py OLD NEW resnet

Copy the old binary aside before rebuilding (bazel-bin is overwritten), e.g.
`cp bazel-bin/bench/throughput /tmp/throughput_old`. For each model, mode
(MODES, default train,infer) and precision (PRECISIONS, default fp32,bf16)
it runs both binaries REPS times (default 4), in alternating order (ABBA, so
that a drifting machine slows both alike), 2 threads, and prints the median
examples/s of each and their ratio (> 1: the new build is faster). Run it on
a quiet machine: on 2 cores any other process halves a 2-thread run.
(bench/ab.py is the kernel-level check CI runs.)
"""
import json
import os
import statistics
import subprocess
import sys

# Timed steps per run: about 1-2 s of each (3 steps of the 96 px models,
# 0.3-0.6 s, gave a whole-step allocator change 0.91-0.95x on DenseNet where
# runs of 20 steps gave 1.03x).
STEPS = {"softmax": 100, "mlp": 50, "mlp_dropout": 50, "lenet": 20,
         "bn_lenet": 20, "alexnet": 15, "vgg": 15, "nin": 15, "googlenet": 10,
         "resnet": 10, "densenet": 20}


def run(binary, model, mode, precision):
    out = subprocess.run(
        [binary, f"--model={model}", f"--mode={mode}",
         f"--steps={STEPS[model]}", "--warmup=3", "--threads=2",
         f"--precision={precision}"],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["examples_per_sec"]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    old, new, models = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    for m in models:
        if m not in STEPS:
            sys.exit(f"ab_throughput: unknown model {m!r} (one of {sorted(STEPS)})")
    modes = os.environ.get("MODES", "train,infer").split(",")
    precisions = os.environ.get("PRECISIONS", "fp32,bf16").split(",")
    print("model mode precision old new new/old")
    for m in models:
        for mode in modes:
            for p in precisions:
                speeds = {old: [], new: []}
                for i in range(reps):
                    for b in (old, new) if i % 2 == 0 else (new, old):
                        speeds[b].append(run(b, m, mode, p))
                o, n = statistics.median(speeds[old]), statistics.median(speeds[new])
                print(f"{m} {mode} {p} {o:.1f} {n:.1f} {n / o:.3f}", flush=True)


if __name__ == "__main__":
    main()
