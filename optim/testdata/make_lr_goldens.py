#!/usr/bin/env python3
"""Prints the goldens of optim/lr_schedule_test.cc from PyTorch's schedulers.

    /usr/bin/python3 optim/testdata/make_lr_goldens.py

Two parameter groups with base rates 0.1 and 0.02; a linear warm-up
(`LinearLR(start_factor=1/W, total_iters=W-1)`, stepped after every batch)
chained on the same optimizer with a per-epoch schedule (`StepLR` or
`CosineAnnealingLR`, stepped after every epoch). For each batch: the rate
each group trains it with. PyTorch updates the rates recursively (each
scheduler multiplies the group's current rate); dive computes them in closed
form, so they agree up to rounding.
"""

import torch

BASE = (0.1, 0.02)
STEPS_PER_EPOCH = 3


def rates(make_epoch_schedule, warmup_steps, epochs):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in BASE]
    opt = torch.optim.SGD([{"params": [p], "lr": lr}
                           for p, lr in zip(params, BASE)], lr=BASE[0])
    warmup = torch.optim.lr_scheduler.LinearLR(
        opt, start_factor=1.0 / warmup_steps, end_factor=1.0,
        total_iters=warmup_steps - 1)
    per_epoch = make_epoch_schedule(opt)
    out = []
    for epoch in range(epochs):
        for step in range(STEPS_PER_EPOCH):
            out.append(tuple(g["lr"] for g in opt.param_groups))
            opt.step()
            warmup.step()
        per_epoch.step()
    return out


def emit(name, table):
    print(f"// {name}: {{group 0, group 1}} for each step of the run.")
    print(f"constexpr double {name}[][2] = {{")
    for a, b in table:
        print(f"    {{{a!r}, {b!r}}},")
    print("};")


emit("kWarmup8ThenStep2Gamma05",
     rates(lambda o: torch.optim.lr_scheduler.StepLR(o, 2, gamma=0.5),
           warmup_steps=8, epochs=6))
emit("kWarmup5ThenCosine4",
     rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 4),
           warmup_steps=5, epochs=6))
