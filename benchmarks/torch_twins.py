"""PyTorch twins of minidl's example models, for the step benchmark and the model-level parity tests.

Each twin is written independently in plain ``torch.nn`` (it does not read minidl's code), with the
same layers in the same order under the same attribute names, so the two state dicts have the same
keys and layouts and a trained minidl model moves into PyTorch with::

    import torch
    from benchmarks.torch_twins import build_twin
    twin = build_twin("unet", base_channels=16)    # the same constructor arguments as the minidl model
    twin.load_state_dict({name: torch.from_numpy(value) for name, value in model.state_dict().items()})

(``tests/test_models_torch_twins.py`` runs exactly these lines from the README.) Twins exist for
UNet (padding "same"), SegNet, FCN-32s/16s/8s (geometry "aligned") and the CAM classifier. There is
no Mask R-CNN twin: its proposal matching and sampling are NumPy code and PyTorch has no RoIAlign
without torchvision.

torch is imported here, at the top: import this module only where torch is installed (the tests
use ``pytest.importorskip("torch")``, the benchmark checks first). minidl itself never imports it.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

# VGG16's stages as (channels / base_channels, 3x3 convs), as in models/segmenter.py.
VGG16_STAGES = ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))


def conv_bn_relu(in_channels: int, out_channels: int) -> list:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU()]


def conv_stage(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    layers = conv_bn_relu(in_channels, out_channels)
    for _ in range(convs - 1):
        layers += conv_bn_relu(out_channels, out_channels)
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- UNet
class EncoderBlock(nn.Module):
    def __init__(self, in_channels, out_channels, dropout):
        super().__init__()
        self.block = conv_stage(in_channels, out_channels, 2)
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        skip = self.block(x)
        return skip, self.dropout(self.pool(skip))


class Encoder(nn.Module):
    def __init__(self, in_channels, base_channels, depth, dropout):
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth)]
        self.blocks = nn.ModuleList(EncoderBlock(c_in, c_out, dropout)
                                    for c_in, c_out in zip([in_channels, *widths[:-1]], widths))

    def forward(self, x):
        skips = []
        for block in self.blocks:
            skip, x = block(x)
            skips.append(skip)
        return x, skips


class DecoderBlock(nn.Module):
    def __init__(self, in_channels, skip_channels, out_channels, dropout):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.dropout = nn.Dropout(dropout)
        self.block = conv_stage(out_channels + skip_channels, out_channels, 2)

    def forward(self, x, skip):
        return self.block(self.dropout(torch.cat([self.up(x), skip], dim=1)))


class Decoder(nn.Module):
    def __init__(self, base_channels, depth, dropout):
        super().__init__()
        widths = [base_channels * 2**i for i in reversed(range(depth))]
        self.blocks = nn.ModuleList(DecoderBlock(2 * width, width, width, dropout) for width in widths)

    def forward(self, x, skips):
        for block, skip in zip(self.blocks, reversed(skips)):
            x = block(x, skip)
        return x


class UNet(nn.Module):
    """models.UNet with padding="same": encoder -> bottleneck -> decoder -> 1x1 conv."""

    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=4, dropout=0.3):
        super().__init__()
        self.encoder = Encoder(in_channels, base_channels, depth, dropout)
        bottom = base_channels * 2 ** (depth - 1)
        self.bottleneck = conv_stage(bottom, 2 * bottom, 2)
        self.decoder = Decoder(base_channels, depth, dropout)
        self.classifier = nn.Conv2d(base_channels, num_classes, 1)

    def forward(self, x):
        x, skips = self.encoder(x)
        return self.classifier(self.decoder(self.bottleneck(x), skips))


# ----------------------------------------------------------------------------- SegNet
class SegNet(nn.Module):
    """models.SegNet: VGG stages with index-keeping max-pools, mirrored decoder that max-unpools."""

    def __init__(self, in_channels=3, num_classes=2, base_channels=16, depth=5):
        super().__init__()
        widths = [base_channels * multiplier for multiplier, _ in VGG16_STAGES[:depth]]
        convs = [n for _, n in VGG16_STAGES[:depth]]
        self.encoder = nn.ModuleList(conv_stage(c_in, c_out, n)
                                     for c_in, c_out, n in zip([in_channels, *widths[:-1]], widths, convs))
        self.decoder = nn.ModuleList(conv_stage(c_in, c_out, n)
                                     for c_in, c_out, n in zip(widths, [widths[0], *widths[:-1]], convs))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        pooled = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape[2:]
            x, indices = nn.functional.max_pool2d(x, 2, return_indices=True)
            pooled.append((indices, size))
        for stage, (indices, size) in zip(reversed(self.decoder), reversed(pooled)):
            x = stage(nn.functional.max_unpool2d(x, indices, 2, output_size=size))
        return self.classifier(x)


# ----------------------------------------------------------------------------- FCN
def bilinear_upsampling(channels: int, factor: int) -> nn.ConvTranspose2d:
    """x factor transposed conv, kernel 2 * factor, padding factor / 2 (minidl's "aligned" geometry);
    its weights come from the minidl model."""
    return nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)


class FCN(nn.Module):
    """models.FCN32s / FCN16s / FCN8s (skips = 0, 1, 2) with geometry="aligned" (no crops)."""

    def __init__(self, skips, in_channels=3, num_classes=2, base_channels=16, fc_channels=None, dropout=0.5):
        super().__init__()
        fc_channels = 16 * base_channels if fc_channels is None else fc_channels
        widths = [base_channels * multiplier for multiplier, _ in VGG16_STAGES]
        self.stages = nn.ModuleList(nn.Sequential(conv_stage(c_in, c_out, convs), nn.MaxPool2d(2))
                                    for c_in, c_out, (_, convs) in zip([in_channels, *widths[:-1]], widths,
                                                                       VGG16_STAGES))
        self.fc6 = nn.Sequential(nn.Conv2d(widths[4], fc_channels, 7, padding=3), nn.ReLU(), nn.Dropout(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(), nn.Dropout(dropout))
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.skip_stages = [3, 2][:skips]
        self.score_pools = nn.ModuleList(nn.Conv2d(widths[s], num_classes, 1) for s in self.skip_stages)
        self.upscore2 = nn.ModuleList(bilinear_upsampling(num_classes, 2) for _ in self.skip_stages)
        self.upscore = bilinear_upsampling(num_classes, 32 // 2**skips)

    def forward(self, x):
        pooled = []
        for stage in self.stages:
            x = stage(x)
            pooled.append(x)
        scores = self.score_fr(self.fc7(self.fc6(x)))
        for stage, score_pool, upsample in zip(self.skip_stages, self.score_pools, self.upscore2):
            scores = upsample(scores) + score_pool(pooled[stage])
        return self.upscore(scores)


# ----------------------------------------------------------------------------- CAM classifier
class CAMClassifier(nn.Module):
    """models.CAMClassifier: conv blocks with 2x2 max-pools between them, global average pool, linear."""

    def __init__(self, in_channels=1, num_classes=10, widths=(16, 32, 64)):
        super().__init__()
        layers = [nn.Sequential(*conv_bn_relu(in_channels, widths[0]))]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.MaxPool2d(2), nn.Sequential(*conv_bn_relu(c_in, c_out))]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        return self.linear(self.features(x).mean(dim=(2, 3)))


TWINS = {"unet": UNet, "segnet": SegNet, "fcn32s": lambda **kw: FCN(0, **kw), "fcn16s": lambda **kw: FCN(1, **kw),
         "fcn8s": lambda **kw: FCN(2, **kw), "cam_classifier": CAMClassifier}


def build_twin(name: str, **config) -> nn.Module:
    """The PyTorch twin of the minidl model ``name`` (a key of ``TWINS``), built with the same arguments."""
    if name not in TWINS:
        raise ValueError(f"build_twin: no PyTorch twin for {name!r}; choose one of {sorted(TWINS)}")
    return TWINS[name](**config)


# ----------------------------------------------------------------------------- comparing the two
def load_minidl_weights(twin: nn.Module, model) -> nn.Module:
    """Copy every parameter and buffer of the minidl ``model`` into ``twin`` (same names, shapes and
    dtype; strict: a missing or extra name raises). Returns the twin."""
    state = model.state_dict()
    dtype = next(value.dtype for value in state.values() if np.issubdtype(value.dtype, np.floating))
    twin.to(torch.float64 if dtype == np.float64 else torch.float32)
    twin.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in state.items()})
    return twin


@contextlib.contextmanager
def dropout_off(*models):
    """Set p = 0 in every dropout layer of minidl models and torch modules (both have ``modules()``)
    inside the block; the old values come back afterwards."""
    layers = [m for model in models for m in model.modules() if type(m).__name__ in ("Dropout", "Dropout2d")]
    saved = [layer.p for layer in layers]
    for layer in layers:
        layer.p = 0.0
    try:
        yield
    finally:
        for layer, p in zip(layers, saved):
            layer.p = p


def minidl_loss_and_gradients(model, images: np.ndarray, targets: np.ndarray) -> tuple:
    """(cross-entropy loss, {parameter name: gradient}) of one training-mode forward/backward in minidl."""
    import minidl
    import minidl.functional as F

    model.train()
    model.zero_grad()
    loss = F.cross_entropy(model(minidl.Tensor(images)), targets)
    loss.backward()
    return loss.item(), {name: p.grad for name, p in model.named_parameters()}


def torch_loss_and_gradients(twin: nn.Module, images: np.ndarray, targets: np.ndarray) -> tuple:
    """The same in PyTorch."""
    twin.train()
    twin.zero_grad()
    loss = nn.functional.cross_entropy(twin(torch.from_numpy(images)), torch.from_numpy(targets))
    loss.backward()
    return loss.item(), {name: p.grad.numpy() for name, p in twin.named_parameters()}


def gradient_differences(model, twin, images: np.ndarray, targets: np.ndarray) -> tuple:
    """Run one step of both with dropout off; return (loss difference relative to the loss,
    largest gradient difference relative to the largest gradient of the same parameter, its name).

    Both models' batch-norm running statistics move by one step (training mode), in the same way.
    """
    with dropout_off(model, twin):
        loss, grads = minidl_loss_and_gradients(model, images, targets)
        twin_loss, twin_grads = torch_loss_and_gradients(twin, images, targets)
    if set(grads) != set(twin_grads):
        raise ValueError(f"gradient_differences: parameter names differ: {sorted(set(grads) ^ set(twin_grads))}")
    worst, worst_name = 0.0, None
    for name, grad in grads.items():
        difference = np.abs(grad - twin_grads[name]).max() / max(np.abs(twin_grads[name]).max(), 1e-30)
        if difference >= worst:
            worst, worst_name = difference, name
    return abs(loss - twin_loss) / abs(twin_loss), worst, worst_name
