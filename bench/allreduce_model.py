"""The ring all-reduce cost model of bench/README.md, "Scaling over a network".

    T_allreduce(N) = 2 (N - 1) / N * gradient_bytes / bandwidth
                     + 2 (N - 1) * latency

for N ranks, each on a link of `bandwidth` bytes/s in each direction. It
reads the runs of bench/netns_scaling.sh (one JSON line each), prints the
all-reduce-alone measurements beside the model's prediction, and projects
the training step of ResNet-18 and VGG-11/4 to 4, 16 and 64 machines at 10
and 100 Gbit/s from the measured single-process compute step:

    no overlap:       T_step = T_compute + T_allreduce
    perfect overlap:  T_step = max(T_compute, T_allreduce)

(the measured overlap lies between the two), as markdown tables:

    python3 bench/allreduce_model.py /tmp/netns_scaling.jsonl [--latency_us=X]

--latency_us defaults to the one fitted from the smallest all-reduce
measured (softmax's 31 KB at 10 Gbit/s).
"""

import argparse
import json
import statistics
import sys

RATES = {"1gbit": 1e9, "10gbit": 10e9, "none": None}


def ring_seconds(n, grad_bytes, bits_per_s, latency_s):
    return (2 * (n - 1) / n * grad_bytes / (bits_per_s / 8)
            + 2 * (n - 1) * latency_s)


def binomial_seconds(n, grad_bytes, bits_per_s, latency_s):
    """Open MPI's choice below 4 ranks (coll/libnbc): a binomial-tree reduce
    to rank 0, then a binomial broadcast: 2 ceil(log2 N) whole-buffer
    messages one after another."""
    rounds = 2 * max(1, (n - 1).bit_length())
    return rounds * (grad_bytes / (bits_per_s / 8) + latency_s)


def algorithm_used(iallreduce, n, grad_bytes):
    """coll/libnbc's MPI_Iallreduce selection in Open MPI 4.1 for a float
    sum when --iallreduce=auto: binomial below 4 ranks or 64 KiB, else
    Rabenseifner's reduce-scatter + allgather."""
    if iallreduce != "auto":
        return iallreduce
    return "binomial" if n < 4 or grad_bytes < 65536 else "rabenseifner"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", help="netns_scaling.sh's JSON lines")
    parser.add_argument("--latency_us", type=float, default=None)
    args = parser.parse_args(argv)
    runs = load(args.runs)

    def ms(run):
        return run["result"]["median_step_ms"]

    # Latency: the smallest message, where the bandwidth term is small
    # (Open MPI's binomial tree: 2 messages for 2 ranks).
    small = [r for r in runs if r["result"]["mode"] == "allreduce_only"
             and r["result"]["model"] == "softmax" and r["rate"] == "10gbit"
             and r["result"]["ranks"] == 2 and r["iallreduce"] == "auto"]
    latency_s = args.latency_us * 1e-6 if args.latency_us is not None else None
    if latency_s is None:
        if not small:
            sys.exit("no softmax all-reduce at 10gbit to fit the latency from")
        r = small[0]
        n = r["result"]["ranks"]
        bw = binomial_seconds(n, r["result"]["gradient_bytes"], 10e9, 0)
        latency_s = max(0.0, (ms(r) / 1e3 - bw) / 2)
    print(f"latency per message: {latency_s * 1e6:.1f} us\n")

    print("| model | gradient bytes | ranks | link | MPI_Iallreduce | "
          "measured ms | ring model ms | model of the algorithm used, ms "
          "| measured / that model |")
    print("| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for r in runs:
        res = r["result"]
        if res["mode"] != "allreduce_only" or RATES.get(r["rate"]) is None:
            continue
        n, nbytes, bps = res["ranks"], res["gradient_bytes"], RATES[r["rate"]]
        ring_s = ring_seconds(n, nbytes, bps, latency_s)
        used = algorithm_used(r["iallreduce"], n, nbytes)
        if used == "binomial":
            used_s = binomial_seconds(n, nbytes, bps, latency_s)
        elif used == "rabenseifner":  # the ring's bytes, 2 log2 N messages
            used_s = (ring_seconds(n, nbytes, bps, 0)
                      + 2 * (n - 1).bit_length() * latency_s)
        else:
            used_s = ring_s
        print(f"| {res['model']} | {nbytes:,} | {n} | {r['rate']} | "
              f"{r['iallreduce']} ({used}) | {ms(r):.2f} | "
              f"{ring_s * 1e3:.2f} | {used_s * 1e3:.2f} | "
              f"{ms(r) / 1e3 / used_s:.2f} |")

    compute = {r["result"]["model"]: r for r in runs if r["rate"] == "local"}
    print("\n| model | batch/rank | compute ms (1 process, 1 thread) | "
          "link | N | all-reduce ms | step ms, no overlap | "
          "step ms, perfect overlap | scaling efficiency, no overlap |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for name in ("resnet", "vgg"):
        if name not in compute:
            continue
        res = compute[name]["result"]
        t_c = ms(compute[name]) / 1e3
        for gbit in (10, 100):
            for n in (4, 16, 64):
                t_ar = ring_seconds(n, res["gradient_bytes"], gbit * 1e9,
                                    latency_s)
                print(f"| {name} | {res['batch_size']} x {res['input_size']} "
                      f"| {t_c * 1e3:.0f} | {gbit} Gbit/s | {n} | "
                      f"{t_ar * 1e3:.1f} | {(t_c + t_ar) * 1e3:.0f} | "
                      f"{max(t_c, t_ar) * 1e3:.0f} | "
                      f"{t_c / (t_c + t_ar):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
