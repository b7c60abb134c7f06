"""A small CNN classifier that ends in global average pooling and one linear layer: CAM-able by design.

    features:  [conv 3x3 -> BatchNorm -> ReLU] (-> max-pool 2x2 -> [conv 3x3 -> BatchNorm -> ReLU]) ...
    head:      A (N, K, h, w) -> mean over h, w (global average pooling) -> linear -> logits (N, classes)

Because nothing but an average and a linear map lies between the last feature maps A and the
logits, y_c = mean_ij (sum_k w_ck A_k[i, j]) + b_c exactly: the class activation map
CAM_c = sum_k w_ck A_k is the class score spread over the image (``minidl.explain.cam``).
The explicit split ``logits = model.head(model.features(x))`` is what CAM and Grad-CAM need::

    class_activation_map(model.features, model.linear, x)
    grad_cam(model.features, model.head, x)

With widths (w_1, ..., w_L) the image is halved L - 1 times (28 -> 14 -> 7 for three widths),
so the maps have 1 / 2^(L-1) of the input resolution.
"""

from __future__ import annotations

from minidl import nn

from .blocks import conv_bn_relu


class CAMClassifier(nn.Module):
    """Logits (N, num_classes) for images (N, in_channels, H, W); train with F.cross_entropy.

    widths: output channels of the conv blocks, a 2x2 max-pool between consecutive blocks
    (H and W are floor-halved each time and must stay >= 1).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths=(16, 32, 64)):
        super().__init__()
        if len(widths) < 1:
            raise ValueError(f"CAMClassifier: widths needs at least one conv block, got {widths!r}")
        layers = [nn.Sequential(*conv_bn_relu(in_channels, widths[0]))]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.MaxPool2d(2), nn.Sequential(*conv_bn_relu(c_in, c_out))]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(widths[-1], num_classes)
        self.in_channels = in_channels

    def head(self, activations):
        """logits = linear(global average pool of A):  A (N, K, h, w) -> (N, num_classes)."""
        return self.linear(activations.mean(dim=(2, 3)))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CAMClassifier: expected images (N, {self.in_channels}, H, W), got shape {x.shape}")
        return self.head(self.features(x))
