"""A small convolutional classifier for 28x28 grayscale images such as Fashion-MNIST.

Three blocks, each conv 3x3 (padding 1) -> BatchNorm -> ReLU -> max-pool 2x2, halve the image
and widen the channels; dropout and one linear layer turn the last feature maps into class scores::

    x (N, 1, 28, 28) -> (N, 16, 14, 14) -> (N, 32, 7, 7) -> (N, 64, 3, 3) -> flatten (N, 576) -> logits (N, 10)

With the default widths it has about 29 thousand parameters.
"""

from __future__ import annotations

from minidl import nn

from .blocks import conv_bn_relu


class FashionCNN(nn.Module):
    """Logits (N, num_classes) for images (N, in_channels, 28, 28); train with F.cross_entropy.

    widths: output channels of the three conv blocks; each block halves H and W (28 -> 14 -> 7 -> 3,
    floor division), so the classifier sees widths[-1] * 3 * 3 features.
    dropout: probability of zeroing each of those features during training.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths=(16, 32, 64), dropout: float = 0.25):
        super().__init__()
        channels = [in_channels, *widths]
        self.features = nn.Sequential(*[nn.Sequential(*conv_bn_relu(c_in, c_out), nn.MaxPool2d(2))
                                        for c_in, c_out in zip(channels, channels[1:])])
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(widths[-1] * 3 * 3, num_classes))

    def forward(self, x):
        if x.ndim != 4 or x.shape[2:] != (28, 28):
            raise ValueError(f"FashionCNN: expected images (N, C, 28, 28), got shape {x.shape}")
        return self.classifier(self.features(x))
