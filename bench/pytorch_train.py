"""Trains a PyTorch twin of a zoo model on Fashion-MNIST with the book's
recipe, as the reference for the accuracies of our `//models/<name>:train`
(bench/book_accuracy.sh runs both).

    /usr/bin/python3 -m bench.pytorch_train --model lenet
    /usr/bin/python3 -m bench.pytorch_train --model resnet --epochs 1 --threads 2

Recipe (d2l's train_ch3 / train_ch6, as our trainer's defaults): the twin of
models/pytorch_twins.py with the book's initialization (Xavier-uniform on the
CNNs' Conv2d/Linear weights, N(0, 0.01) for the linear models), plain
minibatch SGD with the model's lr, mean cross-entropy, the model's batch size
and input size (bilinear resize with F.interpolate, align_corners=False, no
antialias, like our loader), images scaled to [0, 1], the training set
reshuffled every epoch (seeded), train accuracy averaged over the epoch in
train mode, test accuracy in eval mode. Prints the line our trainer prints
after each epoch:

    epoch 3: loss 0.412, train acc 0.851, test acc 0.838, 41203.5 examples/sec

Reads the IDX .gz files with gzip + numpy (no torchvision). Needs Debian's
/usr/bin/python3 (python3-torch).
"""

import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models import pytorch_twins, zoo


def read_idx(path):
    """An IDX file (gzip-compressed) as a numpy array of its shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big")
            for i in range(ndim)]
    offset = 4 + 4 * ndim
    n = int(np.prod(dims))
    if len(data) - offset != n:
        raise ValueError(f"{path}: {len(data) - offset} bytes for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_split(data_dir, prefix):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def batches(x, y, batch_size, size, order=None):
    """Yields (images, labels), resized to size x size when needed."""
    n = x.shape[0]
    idx = order if order is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        b = idx[start:start + batch_size]
        xb = x[b]
        if size != xb.shape[-1]:
            xb = F.interpolate(xb, size=(size, size), mode="bilinear",
                               align_corners=False)
        yield xb, y[b]


def evaluate(net, x, y, batch_size, size):
    net.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in batches(x, y, batch_size, size):
            correct += (net(xb).argmax(dim=1) == yb).sum().item()
    return correct / x.shape[0]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=zoo.names())
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="0: torch default")
    p.add_argument("--lr", type=float, help="default: the recipe's")
    p.add_argument("--batch_size", type=int, help="default: the recipe's")
    p.add_argument("--resize", type=int, help="default: the recipe's")
    p.add_argument("--train_limit", type=int, default=0,
                   help="use only the first N training examples (0: all)")
    p.add_argument("--test_limit", type=int, default=0)
    p.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    args = p.parse_args(argv)

    recipe = zoo.spec(args.model)["recipe"]  # the C++ spec's
    lr = args.lr if args.lr is not None else recipe["lr"]
    batch_size = args.batch_size or recipe["batch_size"]
    size = args.resize or recipe["input_size"]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_x, train_y = load_split(args.data_dir, "train")
    test_x, test_y = load_split(args.data_dir, "t10k")
    if args.train_limit > 0:
        train_x, train_y = train_x[:args.train_limit], train_y[:args.train_limit]
    if args.test_limit > 0:
        test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]

    net = pytorch_twins.TWINS[args.model](size)
    loss_fn = nn.CrossEntropyLoss()  # mean over the batch
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    shuffle = torch.Generator().manual_seed(args.seed)
    print(f"{args.model}: lr {lr}, batch {batch_size}, input {size}x{size}, "
          f"{torch.get_num_threads()} threads, seed {args.seed}",
          file=sys.stderr)

    for epoch in range(1, args.epochs + 1):
        net.train()
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        order = torch.randperm(train_x.shape[0], generator=shuffle)
        for xb, yb in batches(train_x, train_y, batch_size, size, order):
            logits = net(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = yb.shape[0]
            loss_sum += loss.item() * n
            correct += (logits.argmax(dim=1) == yb).sum().item()
            seen += n
        seconds = time.perf_counter() - start
        test_acc = evaluate(net, test_x, test_y, batch_size, size)
        print(f"epoch {epoch}: loss {loss_sum / seen:.3f}, train acc "
              f"{correct / seen:.3f}, test acc {test_acc:.3f}, "
              f"{seen / seconds:.1f} examples/sec", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
