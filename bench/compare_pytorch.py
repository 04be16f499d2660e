"""Training and inference throughput of dive next to PyTorch, same machine,
same run.

    /usr/bin/python3 -m bench.compare_pytorch       # every zoo model, ~4 min
    /usr/bin/python3 -m bench.compare_pytorch --models lenet,resnet --reps 5

For each model and mode (train, infer) it runs, alternately and `--reps`
times, (a) our `bench/throughput` binary in fp32 and in bf16 (`--precision`)
and (b) the model's PyTorch twin (models/pytorch_twins.py) in a child process
of this script in each of PyTorch's CPU modes: fp32, channels_last, bf16
autocast (`torch.cpu.amp.autocast(dtype=torch.bfloat16)`) and channels_last
with bf16 autocast, and in inference the two bf16 modes again with one
autocast region around all steps ("_cached": autocast then converts each
weight to bf16 once and keeps it, as a serving loop inside one region
would; which placement is faster depends on the model: on a Zen 5 AlexNet
ran 2x faster cached and NiN 3x slower). Every run is its own process, so that peak RSS is per
framework. All time the same thing on the same synthetic batch shape
(uniform [0, 1) images, random labels):

  train  forward, mean softmax cross-entropy, read the loss, zero the
         gradients, backward, plain SGD step with the recipe learning rate
  infer  forward in eval mode without gradients

at the batch size and resolution of the C++ bench setting
(bench/model_bench.h; the PyTorch side takes them from our JSON), with
`--threads` threads on both sides, the same number of timed steps and the
same untimed warm-up steps. Data loading is excluded on both sides. The table
shows dive's medians over the repetitions and PyTorch's best run (the
strongest reference: its speed can be bimodal per process), and two ratios
(> 1: dive is faster):
dive fp32 / PyTorch fp32, and dive's faster precision / PyTorch's fastest mode
(named in the row). The first line names the CPU, its features and dive's
kernel path (tensor/cpu.h).
Peak RSS is each process's VmHWM; PyTorch's includes the Python interpreter
and libtorch (its "base" column is the RSS after `import torch`).

Needs Debian's /usr/bin/python3 (python3-torch); stdlib otherwise.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from models import zoo  # the C++ specs

# Timed steps per run (the same for both frameworks): about 1-3 s each.
DEFAULT_STEPS = {
    "softmax": 100, "mlp": 50, "mlp_dropout": 50, "lenet": 20, "bn_lenet": 20,
    "alexnet": 5, "vgg": 5, "nin": 5, "googlenet": 3, "resnet": 3,
    "densenet": 3,
}



# The targets of the bf16 performance issue: dive fp32 at least 1.2x PyTorch
# fp32 everywhere; against PyTorch's fastest mode at least 1.5x on the large
# models and 2.5x training the small ones; peak memory at most PyTorch's.
SMALL_MODELS = {"softmax", "mlp", "mlp_dropout", "lenet", "bn_lenet"}

TORCH_MODES = ["fp32", "channels_last", "bf16", "channels_last_bf16",
               "bf16_cached", "channels_last_bf16_cached",
               "channels_last_frozen", "channels_last_bf16_frozen", "int8"]
# "_frozen" (inference only): the twin traced and frozen by TorchScript
# (torch.jit.trace then torch.jit.freeze, under bf16 autocast for the bf16
# mode, as Intel's extension's recipe does), run inside one no_grad and
# autocast region: PyTorch's answer to dive's nn::Module::Freeze, its
# weights folded and prepacked once.
# int8 (inference only, not run by default: compare it with dive's
# `--precisions fp32,bf16,int8 --torch_modes fp32,int8 --modes infer`):
# the twin quantized after training by FX graph mode (prepare_fx with the
# engine's default QConfigMapping, 4 calibration batches, convert_fx), on
# the first quantized engine this PyTorch has of fbgemm, x86 and onednn
# (Debian's 1.13 has no FBGEMM: onednn, oneDNN's int8 kernels on VNNI).
QUANTIZED_ENGINES = ("fbgemm", "x86", "onednn")
DEFAULT_TORCH_MODES = [m for m in TORCH_MODES if m != "int8"]


def runs_in(torch_mode, mode):
    """Whether `torch_mode` applies to `mode`: a cast cache and int8 are for
    inference only (in training the weights change every step)."""
    return mode == "infer" or not (torch_mode.endswith(("_cached", "_frozen"))
                                   or torch_mode == "int8")


def target(row):
    """The row's target ratios and whether both are met ("ok" / "MISS")."""
    want = 2.5 if row["mode"] == "train" and row["model"] in SMALL_MODELS \
        else 1.5
    met = (row["ratio_fp32"] >= 1.2 and row["ratio_best"] >= want and
           row["ours_rss"] <= row["torch_rss"])
    return want, "ok" if met else "MISS"


# -----------------------------------------------------------------------------
# PyTorch child
# -----------------------------------------------------------------------------

def torch_child(args):
    """Runs the twin and prints one line of JSON like bench/throughput."""
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch
    from torch import nn
    from models import pytorch_twins

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    after_import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    net = pytorch_twins.TWINS[args.model](args.resize)
    images = torch.rand(args.batch_size, 1, args.resize, args.resize)
    labels = torch.randint(0, 10, (args.batch_size,))
    if "channels_last" in args.torch_mode:
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    autocast = torch.cpu.amp.autocast(enabled="bf16" in args.torch_mode,
                                      dtype=torch.bfloat16)
    engine = None
    if args.torch_mode == "int8":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
        engines = torch.backends.quantized.supported_engines
        engine = next((e for e in QUANTIZED_ENGINES if e in engines), None)
        if engine is None:
            sys.exit(f"no quantized engine of {QUANTIZED_ENGINES} in {engines}")
        torch.backends.quantized.engine = engine
        net.eval()
        net = prepare_fx(net, get_default_qconfig_mapping(engine),
                         example_inputs=(images,))
        with torch.no_grad():
            for _ in range(4):
                net(torch.rand_like(images))
        net = convert_fx(net)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = (torch.optim.SGD(net.parameters(), lr=args.lr)
                 if args.mode == "train" else None)
    loss_value = None

    def train_step():
        nonlocal loss_value
        net.train()
        with autocast:
            loss = loss_fn(net(images), labels)
        loss_value = loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    cached = args.torch_mode.endswith(("_cached", "_frozen"))
    if not runs_in(args.torch_mode, args.mode):
        sys.exit(f"--torch_mode={args.torch_mode} is for inference only")

    def infer_step():
        net.eval()
        if cached:  # inside the region around all steps
            net(images)
            return
        with torch.no_grad(), autocast:
            net(images)

    def region():
        stack = contextlib.ExitStack()
        if cached:
            stack.enter_context(torch.no_grad())
            stack.enter_context(autocast)
        return stack

    if args.torch_mode.endswith("_frozen"):
        net.eval()
        with region():
            net = torch.jit.freeze(
                torch.jit.trace(net, images, check_trace=False))
    step = train_step if args.mode == "train" else infer_step
    with region():
        for _ in range(args.warmup):
            step()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = time.perf_counter() - start
    print(json.dumps({
        "framework": "torch", "model": args.model, "mode": args.mode,
        "precision": args.torch_mode,
        "batch_size": args.batch_size, "input_size": args.resize,
        "lr": args.lr, "threads": torch.get_num_threads(),
        "warmup": args.warmup, "steps": args.steps, "seconds": seconds,
        "examples_per_sec": args.steps * args.batch_size / seconds,
        "baseline_rss_mb": after_import_rss, "python_rss_mb": base_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": loss_value, "blas": mapped_blas(),
        "quantized_engine": engine}))
    return 0


def mapped_blas():
    """The BLAS library this process has loaded (after `import torch`)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line}
    return ", ".join(sorted(l for l in libs if ".so" in l and "lapack" not in l))


# -----------------------------------------------------------------------------
# Parent
# -----------------------------------------------------------------------------

# Debian picks libblas.so.3 through update-alternatives, and installing
# libopenblas-dev switches it to the pthread build. Put the OpenMP build first
# for the PyTorch children, so that its BLAS threads are OpenMP threads like
# ours (and like oneDNN's, which PyTorch's convolutions use).
OPENBLAS_OPENMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


# This script again as the PyTorch child, a module from the repository root
# (run_json's cwd).
CHILD = [sys.executable, "-m", "bench.compare_pytorch", "--child"]


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                         text=True, cwd=REPO, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def torch_config():
    """What PyTorch computes with: BLAS, oneDNN, OpenMP, vector ISA."""
    code = r"""
import re, torch
c = torch.__config__.show()
for l in c.splitlines():
    l = l.strip().lstrip("- ")
    if l.startswith(("Intel(R) MKL-DNN", "OpenMP", "CPU capability")):
        print(l)
print(re.search(r"BLAS_INFO=\w+", c).group(0))
print("mkldnn (oneDNN) available:", torch.backends.mkldnn.is_available(),
      "enabled:", torch.backends.mkldnn.enabled)
print("quantized engines:", ",".join(torch.backends.quantized.supported_engines))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    return out.splitlines() + [f"libblas.so.3 -> {blas}"]


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def uptime():
    with open("/proc/loadavg") as f:
        return "load average " + " ".join(f.read().split()[:3])


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models",
                   help="comma-separated zoo names (default: all but "
                        "mlp_dropout, whose speed is the MLP's)")
    p.add_argument("--modes", default="train,infer")
    p.add_argument("--reps", type=int, default=3,
                   help="alternating runs per framework (median reported)")
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps per run (0: per-model default)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--binary",
                   help="our throughput binary (default: `bazel info "
                        "bazel-bin`/bench/throughput)")
    p.add_argument("--no_build", action="store_true",
                   help="do not run `bazel build //bench:throughput` first")
    p.add_argument("--json", help="also write every run to this file")
    p.add_argument("--torch_modes", default=",".join(DEFAULT_TORCH_MODES),
                   help="PyTorch modes to run, of " + ",".join(TORCH_MODES) +
                        " (default: all but int8; the fastest counts)")
    p.add_argument("--precisions", default="fp32,bf16",
                   help="dive precisions to run (fp32 first)")
    p.add_argument("--torch_blas", choices=["openmp", "system"],
                   default="openmp",
                   help="OpenBLAS for PyTorch: the OpenMP build, or whatever "
                        "libblas.so.3 the system's alternative points to")
    # Internal: the PyTorch child.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--batch_size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--resize", type=int, help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--torch_mode", default="fp32", choices=TORCH_MODES,
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return torch_child(args)

    if not args.no_build:
        subprocess.run(["bazel", "build", "//bench:throughput"], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
    if not args.binary:
        # Not the bazel-bin symlink: it follows whichever --config ran last.
        args.binary = os.path.join(subprocess.run(
            ["bazel", "info", "bazel-bin"], check=True, cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True).stdout.strip(), "bench", "throughput")
    cpu = run_json([args.binary, "--model=softmax", "--mode=infer",
                    "--steps=1", "--warmup=0", "--batch_size=1"])["cpu"]
    print(f"cpu: {cpu}")
    print(f"machine: {os.cpu_count()} cores, {uptime()} at start")
    print("torch: " + "; ".join(torch_config()))
    torch_env = dict(os.environ)
    if args.torch_blas == "openmp" and os.path.isdir(OPENBLAS_OPENMP):
        torch_env["LD_LIBRARY_PATH"] = ":".join(
            filter(None, [OPENBLAS_OPENMP, os.environ.get("LD_LIBRARY_PATH")]))
    blas = run_json(CHILD + [
        "--model=softmax", "--mode=infer", "--batch_size=2", "--resize=28",
        "--lr=0.1", "--steps=1", "--warmup=0", f"--threads={args.threads}"],
        env=torch_env)["blas"]
    print(f"torch BLAS loaded in the children: {blas}")
    print(f"threads {args.threads}, {args.reps} alternating runs per "
          f"framework, warm-up {args.warmup} steps (not timed)\n")

    models = args.models.split(",") if args.models else [
        m for m in zoo.names() if m != "mlp_dropout"]
    rows, runs = [], []
    precisions = args.precisions.split(",")
    torch_modes = args.torch_modes.split(",")
    for model in models:
        steps = args.steps or DEFAULT_STEPS.get(model, 5)
        for mode in args.modes.split(","):
            ours = {p: [] for p in precisions}
            torch_runs = {m: [] for m in torch_modes}
            for _ in range(args.reps):
                for precision in precisions:
                    o = run_json([args.binary, f"--model={model}",
                                  f"--mode={mode}", f"--steps={steps}",
                                  f"--warmup={args.warmup}",
                                  f"--threads={args.threads}",
                                  f"--precision={precision}"])
                    ours[precision].append(o)
                for torch_mode in torch_modes:
                    if not runs_in(torch_mode, mode):
                        continue
                    t = run_json(CHILD + [
                        f"--model={model}", f"--mode={mode}",
                        f"--batch_size={o['batch_size']}",
                        f"--resize={o['input_size']}", f"--lr={o['lr']}",
                        f"--steps={steps}", f"--warmup={args.warmup}",
                        f"--threads={args.threads}",
                        f"--torch_mode={torch_mode}"], env=torch_env)
                    torch_runs[torch_mode].append(t)
            torch_runs = {m: rs for m, rs in torch_runs.items() if rs}
            for group in list(ours.values()) + list(torch_runs.values()):
                runs += group
            med = lambda rs, k: statistics.median(r[k] for r in rs)
            speed = {f"dive {p}": med(rs, "examples_per_sec")
                     for p, rs in ours.items()}
            # PyTorch's best run, not its median: on the Zen 5 VMs its speed
            # is bimodal per process (NiN channels_last + bf16 inference ran
            # at about 900 or about 3,000 ex/s in six consecutive processes),
            # so the reference is the strongest it showed.
            speed.update({f"torch {m}": max(r["examples_per_sec"] for r in rs)
                          for m, rs in torch_runs.items()})
            best_ours = max((k for k in speed if k.startswith("dive")),
                            key=speed.get)
            best_torch = max((k for k in speed if k.startswith("torch")),
                             key=speed.get)
            # Both frameworks' FLOP/s against the peak of the instruction
            # dive's faster precision ran on (FMA, or VDPBF16PS in bf16),
            # measured in its processes: one roof for both.
            flops = o["flops_per_example"]
            peak = med(ours[best_ours[len("dive "):]], "peak_gflops") * 1e9
            fp32_ours = f"dive {precisions[0]}"
            fp32_torch = f"torch {torch_modes[0]}"
            row = {
                "model": model, "mode": mode, "speed": speed,
                "batch": o["batch_size"], "size": o["input_size"],
                "steps": steps, "best_ours": best_ours,
                "best_torch": best_torch,
                "ratio_fp32": speed[fp32_ours] / speed[fp32_torch],
                "ratio_best": speed[best_ours] / speed[best_torch],
                "ours_peak": speed[best_ours] * flops / peak,
                "torch_peak": speed[best_torch] * flops / peak,
                "ours_rss": max(med(rs, "peak_rss_mb") for rs in ours.values()),
                "torch_rss": min(med(rs, "peak_rss_mb")
                                 for rs in torch_runs.values()),
                "load": load1(),
            }
            rows.append(row)
            print(f"  {model} {mode}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in speed.items()) + " ex/s",
                file=sys.stderr)

    columns = [f"dive {p}" for p in precisions] + \
        [f"torch {m}" for m in torch_modes]
    header = (f"{'model':<10} {'mode':<5} {'batch':>5} {'size':>4} " +
              " ".join(f"{c:>{max(len(c), 10)}}" for c in columns) +
              f" {'fp32 ratio':>10} {'best ratio':>10}  {'vs torch mode':<18} "
              f"{'% peak dive/torch':>17} "
              f"{'MB dive/torch':>13} {'load':>4}  {'target':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        want, met = target(r)
        print(f"{r['model']:<10} {r['mode']:<5} {r['batch']:>5} {r['size']:>4} "
              + " ".join(f"{r['speed'][c]:>{max(len(c), 10)}.1f}"
                         if c in r["speed"] else f"{'-':>{max(len(c), 10)}}"
                         for c in columns) +
              f" {r['ratio_fp32']:>9.2f}x {r['ratio_best']:>9.2f}x  "
              f"{r['best_torch'][6:]:<18} "
              f"{100 * r['ours_peak']:>8.0f}/{100 * r['torch_peak']:<8.0f} "
              f"{r['ours_rss']:>6.0f}/{r['torch_rss']:<6.0f} {r['load']:>4.1f}  "
              f"{met:>4} {want:.1f}x")
    print(f"\ncolumns: examples/s (dive: medians; PyTorch: its best run, "
          f"its speed being bimodal per process on some VMs); fp32 ratio = dive fp32 / PyTorch "
          f"fp32; best ratio = dive's faster precision / PyTorch's fastest "
          f"mode (named), > 1: dive faster; % peak = the best runs' FLOP/s "
          f"(conv and linear multiply-adds x 2, a training step 3 forward "
          f"passes: bench/throughput's flops_per_example) over the peak "
          f"bench/throughput measured for dive's faster precision (FMA in "
          f"fp32, VDPBF16PS in bf16 where the CPU has it); MB = peak RSS (VmHWM), dive's "
          f"largest / PyTorch's smallest; load = 1-minute load average after "
          f"the row's runs ({os.cpu_count()} cores; the runs themselves add "
          f"about {args.threads}); target: fp32 ratio >= 1.2x and best ratio "
          f">= the shown one (2.5x training the small models, 1.5x "
          f"otherwise), with no more memory than PyTorch.")
    misses = [f"{r['model']} {r['mode']}" for r in rows if target(r)[1] != "ok"]
    print(f"targets met by {len(rows) - len(misses)} of {len(rows)} rows" +
          (f"; missed: {', '.join(misses)}" if misses else ""))
    print(f"{uptime()} at end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
