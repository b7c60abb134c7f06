"""SegNet (Badrinarayanan, Kendall & Cipolla, 2015/2017): an encoder-decoder that upsamples with pooling indices.

Encoder: VGG stages of 3x3 conv -> batch norm -> ReLU, each followed by a 2x2 max-pool that also
returns *where* each maximum was (its index in the H x W plane). Decoder: the mirror image; each
stage first max-unpools, putting every value back at the position its maximum came from (zeros
elsewhere, a sparse map), then densifies it with conv -> batch norm -> ReLU. No feature maps cross
from encoder to decoder, only the indices:

    encoder stage i: (N, C_{i-1}, H_i, W_i) -> conv_stage -> (N, C_i, H_i, W_i)
                     -> max_pool 2x2 -> (N, C_i, H_i/2, W_i/2) and indices of the same shape
    decoder stage i: (N, C_i, H_i/2, W_i/2) -> max_unpool with stage i's indices -> (N, C_i, H_i, W_i)
                     -> conv_stage -> (N, C_{i-1}, H_i, W_i)        (C_{-1} = C_0 for the last one)
    classifier:      1x1 conv (N, C_0, H, W) -> logits (N, num_classes, H, W)

The memory argument of the paper: to recover boundaries, UNet keeps each encoder map before its
pool, C_i * H_i * W_i float32 values = 4 C_i H_i W_i bytes per image. SegNet keeps only which of the
4 window positions won, for each of the C_i * H_i/2 * W_i/2 pooled values: 2 bits each, i.e.
C_i H_i W_i / 16 bytes, 64 times less at the same widths (minidl stores indices as int64, as
PyTorch does, which is still 2 times less than the float32 map; the 2-bit count is what a
dedicated implementation needs). tests/test_models_segnet.py measures both on real forward passes.

Dropout (optional, ``dropout`` > 0) follows Bayesian SegNet's "central" placement (Kendall, Badrinarayanan &
Cipolla, 2015): after the pool of each of the deepest ``min(3, depth)`` encoder stages and after each
of their mirror decoder stages, where the maps are small and the weights many; the paper uses 0.5.
In training each unit is zeroed with probability p and the rest scaled by 1 / (1 - p); in eval mode
it is the identity.

Because the unpool is told each map's size before pooling, SegNet accepts odd sizes too: any input
of at least 2**depth pixels works, and the output always has the input's size.
"""

from __future__ import annotations

from minidl import functional as F
from minidl import nn

from .segmenter import VGG16_STAGES, Segmenter, conv_stage


class SegNet(Segmenter):
    """VGG encoder with index-keeping max-pools, mirrored decoder that max-unpools with them.

    x: (N, in_channels, H, W) -> logits (N, num_classes, H, W). Stage i (i = 0 .. depth-1) has
    ``base_channels * m_i`` channels and ``n_i`` convs with (m_i, n_i) from VGG16: (1, 2), (2, 2),
    (4, 3), (8, 3), (8, 3); depth 5 with base 64 is the paper's network (13 encoder convs). ``dropout``:
    probability of the dropout after the deepest min(3, depth) encoder stages' pools and after their
    mirror decoder stages (0: none).
    """

    CENTRAL_STAGES = 3  # Bayesian SegNet's "central encoder-decoder" dropout: the three deepest stages

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 16, depth: int = 5,
                 dropout: float = 0.0):
        super().__init__(in_channels, num_classes)
        if not 1 <= depth <= len(VGG16_STAGES) or base_channels < 1:
            raise ValueError(f"SegNet: depth must be in 1..{len(VGG16_STAGES)} and base_channels >= 1, "
                             f"got depth={depth}, base_channels={base_channels}")
        self.depth = depth
        widths = [base_channels * multiplier for multiplier, _ in VGG16_STAGES[:depth]]
        convs = [n for _, n in VGG16_STAGES[:depth]]
        self.encoder = nn.ModuleList(conv_stage(c_in, c_out, n)
                                     for c_in, c_out, n in zip([in_channels, *widths[:-1]], widths, convs))
        self.decoder = nn.ModuleList(conv_stage(c_in, c_out, n)
                                     for c_in, c_out, n in zip(widths, [widths[0], *widths[:-1]], convs))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        self.dropout = nn.Dropout(dropout)
        self.first_dropped = max(depth - self.CENTRAL_STAGES, 0)  # stages i >= this one are followed by dropout

    def encode(self, x):
        """(N, in_channels, H, W) -> (deepest pooled map, [(indices, size before the pool), ...] per stage)."""
        pooled = []
        for i, stage in enumerate(self.encoder):
            x = stage(x)
            size = x.shape[2:]
            x, indices = F.max_pool2d(x, 2, return_indices=True)
            if i >= self.first_dropped:
                x = self.dropout(x)
            pooled.append((indices, size))
        return x, pooled

    def decode(self, x, pooled):
        """Deepest map + the encoder's indices -> (N, base_channels, H, W), unpooling deepest first."""
        for i in reversed(range(self.depth)):
            indices, size = pooled[i]
            x = self.decoder[i](F.max_unpool2d(x, indices, 2, output_size=size))
            if i >= self.first_dropped:
                x = self.dropout(x)
        return x

    def forward(self, x):
        self.check_input(x)
        return self.classifier(self.decode(*self.encode(x)))

    def _output_size(self, size: int) -> int | None:
        return size if size >= 2**self.depth else None

    @property
    def size_rule(self) -> str:
        return f"each of the {self.depth} max-pools needs at least 2 pixels, so at least 2**depth = {2**self.depth}"
