"""Remakes the goldens of //models:step_parity_test in PyTorch.

For every zoo model, takes the start that //models:step_parity_case writes
(initial weights, a fixed batch and the optimizer settings), trains the
model's PyTorch twin (pytorch_twins.py) three steps from it with SGD and with
Adam, and writes models/testdata/step_parity/<model>.safetensors:

    <opt>.losses               float32 [steps], before each step's update
    <opt>.<key>.samples        float32 [<= samples]: the state-dict tensor after
                               the steps at step_parity.h's evenly spaced
                               indices
    <opt>.<key>.update_norm    float32 [1]: ||after - before||
    metadata <opt>.roundoff    the parameters whose first gradient is roundoff
                               (RMS below 1e-5, against 1e-3 and more
                               for the rest: a bias the BatchNorm after it
                               cancels), for which Adam's steps are noise

    /usr/bin/python3 -m models.make_step_parity_golden [MODEL ...]

Needs the PyTorch reference (tools/setup.sh --reference) and Bazel.
"""

import os
import subprocess
import sys
import tempfile

import torch
from torch import nn
from torch.nn import functional as F

from models import pytorch_twins, zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "models", "testdata", "step_parity")
ROUNDOFF_RMS = 1e-5


def sample_indices(numel, samples):
    """step_parity.h's ParitySampleIndices."""
    n = min(numel, samples)
    return [0] if n == 1 else [k * (numel - 1) // (n - 1) for k in range(n)]


def start(case):
    """The twin at the case's initial weights, in float64, training, dropout
    off."""
    tensors, meta = case
    net = pytorch_twins.TWINS[meta["model"]](int(meta["input_size"]))
    net.load_state_dict({k[len("state."):]: v for k, v in tensors.items()
                         if k.startswith("state.")}, strict=True)
    net.double().train()
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return net


def optimizer(name, net, meta):
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=float(meta["sgd.lr"]),
                               momentum=float(meta["sgd.momentum"]),
                               weight_decay=float(meta["sgd.weight_decay"]))
    return torch.optim.Adam(net.parameters(), lr=float(meta["adam.lr"]),
                            eps=float(meta["adam.eps"]))


def golden(case):
    tensors, meta = case
    out, out_meta = {}, {"model": meta["model"], "torch": torch.__version__}
    samples = int(meta["samples"])
    for name in ("sgd", "adam"):
        net = start(case)
        before = {k: v.clone().double() for k, v in net.state_dict().items()}
        opt = optimizer(name, net, meta)
        losses, roundoff = [], []
        for step in range(int(meta["steps"])):
            opt.zero_grad()
            loss = F.cross_entropy(net(tensors["images"].double()),
                                   tensors["labels"])
            losses.append(loss.item())
            loss.backward()
            if step == 0:
                roundoff = [k for k, p in net.named_parameters()
                            if p.grad.pow(2).mean().sqrt() < ROUNDOFF_RMS]
            opt.step()
        out[f"{name}.losses"] = torch.tensor(losses)
        if name == "adam":
            out_meta["adam.roundoff"] = ",".join(roundoff)
        for key, t in net.state_dict().items():
            flat = t.detach().double().flatten()
            idx = sample_indices(flat.numel(), samples)
            out[f"{name}.{key}.samples"] = flat[idx].float()
            out[f"{name}.{key}.update_norm"] = torch.tensor(
                [(flat - before[key].flatten()).norm().item()])
        print(f"{meta['model']} {name}: losses "
              f"{', '.join(f'{l:.6f}' for l in losses)}"
              + (f"; roundoff gradients: {', '.join(roundoff)}"
                 if name == "adam" and roundoff else ""))
    return out, out_meta


def main(argv):
    models = argv or zoo.names()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["bazel", "run", "--noshow_progress",
                        "--ui_event_filters=-info", "//models:step_parity_case",
                        "--", f"--out={tmp}", f"--models={','.join(models)}"],
                       cwd=REPO, check=True)
        for model in models:
            case = pytorch_twins.load_safetensors(
                os.path.join(tmp, f"{model}.safetensors"))
            out, meta = golden(case)
            pytorch_twins.save_safetensors(
                os.path.join(OUT, f"{model}.safetensors"), out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
