"""PyTorch twins of the dive model zoo, written as "Dive into Deep Learning"
(PyTorch edition) writes them.

Every C++ model under models/<name> mirrors the `nn.Sequential` tree of its
twin here, so the C++ `StateDict()` keys equal the twin's `state_dict()` keys
one for one and checkpoints move both ways through safetensors files:

    # weights trained by //models/lenet:train, evaluated in PyTorch
    net = TWINS["lenet"](28)
    load_into(net, "/tmp/lenet/model.safetensors")

    # weights from PyTorch, loaded by the C++ side (LoadSafetensors)
    save_safetensors("/tmp/lenet_torch.safetensors", net.state_dict())

Command line (Debian's /usr/bin/python3 has python3-torch):

    python3 -m models.pytorch_twins params NAME [INPUT_SIZE]
        prints the parameter count and the state_dict keys with shapes
    python3 -m models.pytorch_twins list

PyTorch is an optional reference: nothing in the C++ build depends on this
file. Checkpoints are read and written by models/safetensors_io.py (the
standard library alone), wrapped in torch tensors here, so no `safetensors`
package is needed.

Initialization follows the book: `init_weights` with normal(0, 0.01) for the
linear models (biases zero, as in the from-scratch versions), Xavier-uniform
on every Linear/Conv2d weight of the CNNs (train_ch6's `net.apply`), biases of
the CNNs keeping PyTorch's default.
"""

import sys

import torch
from torch import nn
from torch.nn import functional as F

from models import safetensors_io  # the checkpoint format
from models import zoo  # the C++ specs


# -----------------------------------------------------------------------------
# Initialization (d2l's init_weights)
# -----------------------------------------------------------------------------

def init_normal_001(m):
    """d2l 4.3/5.x concise MLPs: weights ~ N(0, 0.01), biases 0."""
    if type(m) == nn.Linear:
        nn.init.normal_(m.weight, std=0.01)
        nn.init.zeros_(m.bias)


def init_xavier(m):
    """d2l train_ch6: Xavier-uniform on every Linear and Conv2d weight."""
    if type(m) == nn.Linear or type(m) == nn.Conv2d:
        nn.init.xavier_uniform_(m.weight)


# -----------------------------------------------------------------------------
# Models (each a constructor taking the input side length)
# -----------------------------------------------------------------------------

def check_input_size(model, input_size, lo, hi=512):
    """Raises ValueError like the C++ CheckInputSize for a size outside
    [lo, hi] (sizes below lo leave some layer with an empty output)."""
    if not lo <= input_size <= hi:
        raise ValueError(f"{model} needs an input size between {lo} and {hi}, "
                         f"got {input_size}")


def softmax(input_size=28):
    """d2l 3.7: softmax regression."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(input_size * input_size, 10))
    net.apply(init_normal_001)
    return net


def mlp(input_size=28):
    """d2l 4.3: concise MLP 784-256-10."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(input_size * input_size, 256),
                        nn.ReLU(), nn.Linear(256, 10))
    net.apply(init_normal_001)
    return net


def mlp_dropout(input_size=28, dropout1=0.2, dropout2=0.5):
    """d2l 4.6: concise dropout MLP 784-256-256-10."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(input_size * input_size, 256),
                        nn.ReLU(),
                        # Dropout after the first fully connected layer
                        nn.Dropout(dropout1),
                        nn.Linear(256, 256),
                        nn.ReLU(),
                        # Dropout after the second fully connected layer
                        nn.Dropout(dropout2),
                        nn.Linear(256, 10))
    net.apply(init_normal_001)
    return net


def lenet(input_size=28):
    """d2l 6.6: LeNet-5 with sigmoids and average pooling. The first Linear
    takes 16 * 5 * 5 = 400 features at 28x28 (generalized: 16 * k * k with
    k = (input_size // 2 - 4) // 2; input_size >= 12)."""
    check_input_size("LeNet", input_size, 12)
    k = (input_size // 2 - 4) // 2
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * k * k, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))
    net.apply(init_xavier)
    return net


def bn_lenet(input_size=28):
    """d2l 7.5: concise LeNet with batch normalization. The first Linear takes
    16 * 4 * 4 = 256 features at 28x28 (generalized: 16 * k * k with
    k = ((input_size - 4) // 2 - 4) // 2; input_size >= 16)."""
    check_input_size("BatchNorm LeNet", input_size, 16)
    k = ((input_size - 4) // 2 - 4) // 2
    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * k * k, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10))
    net.apply(init_xavier)
    return net


def _alexnet_side(input_size):
    s = (input_size + 2 - 11) // 4 + 1   # Conv2d(k=11, s=4, p=1)
    s = (s - 3) // 2 + 1                  # MaxPool2d(3, 2)
    s = (s - 3) // 2 + 1                  # Conv2d(k=5, p=2), MaxPool2d(3, 2)
    s = (s - 3) // 2 + 1                  # 3 x Conv2d(k=3, p=1), MaxPool2d(3, 2)
    return s


def alexnet(input_size=224):
    """d2l 7.1: AlexNet for 1-channel 224x224 inputs (6400 = 256 * 5 * 5
    features before the classifier; input_size >= 65)."""
    check_input_size("AlexNet", input_size, 65)
    k = _alexnet_side(input_size)
    net = nn.Sequential(
        # Here, we use a larger 11 x 11 window to capture objects. At the same
        # time, we use a stride of 4 to greatly reduce the height and width of
        # the output. Here, the number of output channels is much larger than
        # that in LeNet
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        # Make the convolution window smaller, set padding to 2 for consistent
        # height and width across the input and output, and increase the
        # number of output channels
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        # Use three successive convolutional layers and a smaller convolution
        # window. Except for the final convolutional layer, the number of
        # output channels is further increased. Pooling layers are not used to
        # reduce the height and width of input after the first two
        # convolutional layers
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        # Here, the number of outputs of the fully-connected layer is several
        # times larger than that in LeNet. Use the dropout layer to mitigate
        # overfitting
        nn.Linear(256 * k * k, 4096), nn.ReLU(),
        nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(),
        nn.Dropout(p=0.5),
        # Output layer. Since we are using Fashion-MNIST, the number of
        # classes is 10, instead of 1000 as in the paper
        nn.Linear(4096, 10))
    net.apply(init_xavier)
    return net


VGG11_CONV_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels,
                                kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(input_size=224, divisor=4, conv_arch=VGG11_CONV_ARCH):
    """d2l 7.2: VGG-11 with every channel count divided by `divisor` (the
    book trains ratio 4). out_channels * 7 * 7 features at 224x224
    (generalized: side input_size // 32; input_size >= 32)."""
    check_input_size("VGG", input_size, 2 ** len(conv_arch))
    conv_arch = [(pair[0], pair[1] // divisor) for pair in conv_arch]
    conv_blks = []
    in_channels = 1
    # The convolutional part
    for (num_convs, out_channels) in conv_arch:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    k = input_size // 2 ** len(conv_arch)
    net = nn.Sequential(
        *conv_blks, nn.Flatten(),
        # The fully-connected part
        nn.Linear(out_channels * k * k, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10))
    net.apply(init_xavier)
    return net


# ---- Added by the modern-CNN packages (models/nin, googlenet, resnet,
# ---- densenet). Define `nin(input_size)`, `googlenet(input_size)`,
# ---- `resnet18(input_size)`, `densenet(input_size)` between these markers
# ---- and add their entries to TWINS below.

# BEGIN modern CNNs

def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin(input_size=224):
    """d2l 8.3: Network in Network (1,992,166 parameters). Global average
    pooling makes it size-agnostic; input_size >= 67 (the third MaxPool2d
    needs a 3x3 input)."""
    check_input_size("NiN", input_size, 67)
    net = nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        # There are 10 label classes
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        # Transform the four-dimensional output into two-dimensional output
        # with a shape of (batch size, 10)
        nn.Flatten())
    net.apply(init_xavier)
    return net


class Inception(nn.Module):
    # `c1`--`c4` are the number of output channels for each path
    def __init__(self, in_channels, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)
        # Path 1 is a single 1 x 1 convolutional layer
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        # Path 2 is a 1 x 1 convolutional layer followed by a 3 x 3
        # convolutional layer
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        # Path 3 is a 1 x 1 convolutional layer followed by a 5 x 5
        # convolutional layer
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        # Path 4 is a 3 x 3 maximum pooling layer followed by a 1 x 1
        # convolutional layer
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        # Concatenate the outputs on the channel dimension
        return torch.cat((p1, p2, p3, p4), dim=1)


def googlenet(input_size=96):
    """d2l 8.4: GoogLeNet (5,977,530 parameters). Every pooling is padded
    and ends in global average pooling, so any input_size >= 1 works."""
    check_input_size("GoogLeNet", input_size, 1)
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(64, 64, kernel_size=1),
                       nn.ReLU(),
                       nn.Conv2d(64, 192, kernel_size=3, padding=1),
                       nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b3 = nn.Sequential(Inception(192, 64, (96, 128), (16, 32), 32),
                       Inception(256, 128, (128, 192), (32, 96), 64),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b4 = nn.Sequential(Inception(480, 192, (96, 208), (16, 48), 64),
                       Inception(512, 160, (112, 224), (24, 64), 64),
                       Inception(512, 128, (128, 256), (24, 64), 64),
                       Inception(512, 112, (144, 288), (32, 64), 64),
                       Inception(528, 256, (160, 320), (32, 128), 128),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b5 = nn.Sequential(Inception(832, 256, (160, 320), (32, 128), 128),
                       Inception(832, 384, (192, 384), (48, 128), 128),
                       nn.AdaptiveAvgPool2d((1, 1)),
                       nn.Flatten())
    net = nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, 10))
    net.apply(init_xavier)
    return net


class Residual(nn.Module):
    def __init__(self, input_channels, num_channels,
                 use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels,
                               kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels,
                               kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels,
                                   kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels, num_channels, num_residuals,
                 first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels,
                                use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def resnet18(input_size=96):
    """d2l 8.6: ResNet-18 (11,178,378 parameters). Padded convolutions and
    pooling, then global average pooling: any input_size >= 1 works."""
    check_input_size("ResNet-18", input_size, 1)
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    net = nn.Sequential(b1, b2, b3, b4, b5,
                        nn.AdaptiveAvgPool2d((1, 1)),
                        nn.Flatten(), nn.Linear(512, 10))
    net.apply(init_xavier)
    return net


def conv_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    def __init__(self, num_convs, input_channels, num_channels):
        super(DenseBlock, self).__init__()
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(
                num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            # Concatenate the input and output of each block on the channel
            # dimension
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


def densenet(input_size=96):
    """d2l 8.7: DenseNet (758,226 parameters). input_size >= 29: the three
    transition blocks halve an 8x8 map (after b1) down to 1x1."""
    check_input_size("DenseNet", input_size, 29)
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    # `num_channels`: the current number of channels
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        # This is the number of output channels in the previous dense block
        num_channels += num_convs * growth_rate
        # A transition layer that halves the number of channels is added
        # between the dense blocks
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    net = nn.Sequential(
        b1, *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(num_channels, 10))
    net.apply(init_xavier)
    return net

# END modern CNNs


# Model name (as in ModelSpec::name) -> constructor(input_size).
TWINS = {
    "softmax": softmax,
    "mlp": mlp,
    "mlp_dropout": mlp_dropout,
    "lenet": lenet,
    "bn_lenet": bn_lenet,
    "alexnet": alexnet,
    "vgg": vgg,
    "nin": nin,
    "googlenet": googlenet,
    "resnet": resnet18,
    "densenet": densenet,
}


# -----------------------------------------------------------------------------
# safetensors, as torch tensors (the format is in safetensors_io.py)
# -----------------------------------------------------------------------------

_TORCH_DTYPES = {"F32": torch.float32, "I64": torch.int64, "I32": torch.int32}
_DTYPE_NAMES = {v: k for k, v in _TORCH_DTYPES.items()}


def load_safetensors(path):
    """Returns (tensors: dict name -> torch.Tensor, metadata: dict)."""
    entries, metadata = safetensors_io.read(path)
    tensors = {}
    for name, e in entries.items():
        dtype = _TORCH_DTYPES[e.dtype]
        t = (torch.frombuffer(bytearray(e.data), dtype=dtype) if e.data
             else torch.empty(0, dtype=dtype))
        tensors[name] = t.reshape(e.shape).clone()
    return tensors, metadata


def save_safetensors(path, tensors, metadata=None):
    """Writes dict name -> tensor (float32/int64/int32) to `path`."""
    entries = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in _DTYPE_NAMES:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        entries[name] = safetensors_io.Entry(
            _DTYPE_NAMES[t.dtype], list(t.shape),
            t.numpy().tobytes() if t.numel() > 0 else b"")
    safetensors_io.write(path, entries, metadata)


def load_into(model, path):
    """Loads a safetensors checkpoint (e.g. from a C++ `train` run) into
    `model` with strict key and shape checking. BatchNorm's
    num_batches_tracked is an int64 scalar on both sides."""
    tensors, metadata = load_safetensors(path)
    model.load_state_dict(tensors, strict=True)
    return metadata


# -----------------------------------------------------------------------------
# Command line
# -----------------------------------------------------------------------------

def _usage():
    print("usage: python3 -m models.pytorch_twins params NAME [INPUT_SIZE]\n"
          "       python3 -m models.pytorch_twins list\n"
          "       python3 -m models.pytorch_twins compare CHECKPOINT DUMP\n"
          "models: " + ", ".join(TWINS), file=sys.stderr)
    return 2


def compare(checkpoint, dump, tolerance=1e-4):
    """Loads a C++ checkpoint into the twin, feeds it the images of a dump
    written by `bazel run //tools:eval -- --dump=...` and compares the logits
    with the C++ ones. Returns 0 when they agree within `tolerance`."""
    dumped, meta = load_safetensors(dump)
    name, size = meta["model"], int(meta["input_size"])
    net = TWINS[name](size)
    load_into(net, checkpoint)
    net.eval()
    with torch.no_grad():
        logits = net(dumped["images"])
    diff = (logits - dumped["logits"]).abs().max().item()
    ok = diff <= tolerance
    print(f"{name} at {size}x{size}: max |logits(PyTorch) - logits(dive)| = "
          f"{diff:.2e} over {logits.shape[0]} images: "
          f"{'ok' if ok else 'MISMATCH'} (tolerance {tolerance:g})")
    return 0 if ok else 1


def main(argv):
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2])
    if len(argv) >= 1 and argv[0] == "list":
        for name in TWINS:
            print(name)
        return 0
    if len(argv) not in (2, 3) or argv[0] != "params" or argv[1] not in TWINS:
        return _usage()
    name = argv[1]
    size = int(argv[2]) if len(argv) == 3 else \
        zoo.spec(name)["recipe"]["input_size"]
    net = TWINS[name](size)
    params = sum(p.numel() for p in net.parameters())
    print(f"{name} at {size}x{size}: {params} parameters")
    for key, t in net.state_dict().items():
        print(f"  {key} {list(t.shape)} {str(t.dtype).replace('torch.', '')}")
    with torch.no_grad():
        net.eval()
        print("output shape:", list(net(torch.zeros(2, 1, size, size)).shape))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
