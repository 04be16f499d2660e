"""Measures why AlexNet, VGG-11/4 and NiN start on the loss-2.30 plateau
(ln 10: uniform logits) at the book's learning rates, on their PyTorch twins.

    /usr/bin/python3 -m bench.plateau_probe                  # at initialization
    /usr/bin/python3 -m bench.plateau_probe --steps 300 --models alexnet \\
        --sizes 68 --inits xavier,kaiming                     # plus training

For each model, input side and initialization it prints, on one batch of
real Fashion-MNIST images at initialization: the standard deviation of the
logits across the batch (how far from uniform the softmax starts), the loss,
the L2 norm of the first convolution's weight gradient, and the fraction of
the last layer's units that are zero (dead ReLUs: NiN's logits pass through
a ReLU). With --steps N it then trains N steps of the book's recipe (plain
SGD, the model's lr and batch size, shuffled with the seed) and prints the
first step whose loss, averaged over the last 20 steps, is below 2.2: the
length of the plateau.

Initializations: xavier (the book's: Xavier-uniform weights, PyTorch's
default biases), kaiming (He-uniform for ReLU, fan_in), default (PyTorch's
own: Kaiming-uniform with a = sqrt(5), i.e. U(+-1/sqrt(fan_in))).
"""

import argparse
import sys

import torch
from torch import nn

from bench import pytorch_train
from models import pytorch_twins, zoo


def reinit(net, init):
    """Re-initializes the Conv2d/Linear weights of `net` (built with the
    book's Xavier) for `init`; biases keep PyTorch's default."""
    if init == "xavier":
        return
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "kaiming":
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            elif init == "default":
                m.reset_parameters()
            else:
                raise ValueError(f"unknown init {init!r}")


def probe(net, xb, yb):
    """(logit std, loss, first conv's weight-gradient norm) on one batch."""
    net.train()
    net.zero_grad()
    logits = net(xb)
    loss = nn.functional.cross_entropy(logits, yb)
    loss.backward()
    first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    zero = (logits == 0).float().mean().item()
    return logits.std(dim=0).mean().item(), loss.item(), \
        first.weight.grad.norm().item(), zero


def plateau_steps(net, x, y, lr, batch_size, size, steps, seed):
    """The first step whose 20-step mean loss is below 2.2 (None: not within
    `steps`), and the last such mean."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    losses = []
    net.train()
    for step, (xb, yb) in enumerate(
            pytorch_train.batches(x, y, batch_size, size, order), start=1):
        loss = nn.functional.cross_entropy(net(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        window = losses[-20:]
        if len(window) == 20 and sum(window) / 20 < 2.2:
            return step, sum(window) / 20
        if step >= steps:
            break
    return None, sum(losses[-20:]) / len(losses[-20:])


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="alexnet,vgg,nin")
    p.add_argument("--sizes", default="68,96,224",
                   help="input sides (each model needs its minimum: "
                        "AlexNet 65, NiN 67, VGG 32)")
    p.add_argument("--inits", default="xavier,kaiming,default")
    p.add_argument("--steps", type=int, default=0,
                   help="also train this many steps and report the plateau")
    p.add_argument("--probe_batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    x, y = pytorch_train.load_split(args.data_dir, "train")
    print("model      side  init     logit std   loss  |grad conv1|  zero logits"
          + ("  plateau ends at step" if args.steps else ""))
    for name in args.models.split(","):
        recipe = zoo.spec(name)["recipe"]
        for size in (int(s) for s in args.sizes.split(",")):
            for init in args.inits.split(","):
                torch.manual_seed(args.seed)
                net = pytorch_twins.TWINS[name](size)
                reinit(net, init)
                xb, yb = next(pytorch_train.batches(
                    x[:args.probe_batch], y[:args.probe_batch],
                    args.probe_batch, size))
                std, loss, grad, zero = probe(net, xb, yb)
                line = (f"{name:10s} {size:4d}  {init:8s} {std:9.2e} {loss:6.3f}"
                        f"  {grad:11.2e}  {zero:11.2f}")
                if args.steps:
                    step, mean = plateau_steps(
                        net, x, y, recipe["lr"], recipe["batch_size"], size,
                        args.steps, args.seed)
                    line += (f"  {step}" if step else
                             f"  > {args.steps} (mean loss {mean:.3f})")
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
