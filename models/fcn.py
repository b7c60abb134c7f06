"""Fully convolutional networks FCN-32s, FCN-16s, FCN-8s (Long, Shelhamer & Darrell, 2015).

A VGG classifier turned into a segmenter: its fully connected layers become convolutions (fc6 a
7x7 conv, fc7 a 1x1 conv), a 1x1 "score" conv gives class scores on a grid 32 times coarser than
the image, and a transposed convolution initialised to bilinear interpolation (one kernel per
class) upsamples them back. The number in the name is the stride of the last upsampling:

    FCN-32s: image <- x32 upsample( score(fc7) )
    FCN-16s: image <- x16 upsample( x2 upsample(score(fc7)) + score_pool4(pool4) )
    FCN-8s:  image <- x8 upsample( x2 upsample(that sum) + score_pool3(pool3) )

Each skip adds finer detail. The skip scores come from zero-initialised 1x1 convs, so at
initialisation the finer net computes exactly what the coarser one did apart from how it
upsamples, and ``FCN16s.from_fcn32s`` / ``FCN8s.from_fcn16s`` start training from the coarser
net's weights (the paper's staged training).

Where maps meet they must cover the same image region, and the paper's network is padded by 100
pixels at conv1_1 (to accept any input size), so its maps are offset from one another and get
cropped. The offsets are not hard-coded: ``CoordinateMap`` composes each layer's affine map between
pixel coordinates, and ``crop_offset`` reads off the shift between two maps of the same scale.
The paper's VGG16 gives 19 (FCN-32s); 5, 27 (FCN-16s); 5, 9, 31 (FCN-8s). The default geometry
here, "aligned", pads every conv to keep its size and pads each transposed conv by stride/2, so
every map lines up with the image, all offsets come out 0, and H and W must be multiples of 32.

The encoder is VGG16's layout (13 convs in 5 stages) at ``base_channels`` (64 in VGG16), with batch
norm after each of its convs so that it trains from scratch on a CPU (the paper fine-tuned ImageNet
weights); fc6 and fc7 are conv -> ReLU -> dropout as in the paper (their maps can be 1x1, where a
batch norm would have a single value per channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from minidl import functional as F
from minidl import nn
from minidl.kernels.conv import conv_output_size, conv_transpose_output_size

from .segmenter import VGG16_STAGES, Segmenter, conv_stage

GEOMETRIES = ("aligned", "paper")


# ---------------------------------------------------------------------------- coordinate maps
@dataclass(frozen=True)
class CoordinateMap:
    """An affine map between pixel coordinates of two feature maps: ``x_to = scale * x_from + shift``.

    Pixel j of a map sits at coordinate j. A conv or pool with kernel k, stride s, padding p and
    dilation d puts output pixel j over input pixels s*j - p .. s*j - p + d(k-1), centred on
    x = s*j - p + d(k-1)/2; solving for j gives its map (``CoordinateMap.of_conv``):
        scale = 1/s,   shift = (p - d(k-1)/2) / s
    A transposed conv spreads input pixel i over output pixels s*i - p .. s*i - p + d(k-1), centred
    on s*i - p + d(k-1)/2 (``CoordinateMap.of_transposed_conv``; output_padding only adds rows at
    the end, so it does not move coordinates):
        scale = s,     shift = d(k-1)/2 - p
    Layers that keep coordinates (batch norm, ReLU, dropout) are the identity map. Fractions keep
    every composition exact.
    """

    scale: Fraction = Fraction(1)
    shift: Fraction = Fraction(0)

    @classmethod
    def of_conv(cls, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> "CoordinateMap":
        return cls(Fraction(1, stride), Fraction(2 * padding - dilation * (kernel - 1), 2 * stride))

    @classmethod
    def of_transposed_conv(cls, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> "CoordinateMap":
        return cls(Fraction(stride), Fraction(dilation * (kernel - 1), 2) - padding)

    @classmethod
    def of_module(cls, module) -> "CoordinateMap":
        """The map of one nn layer from its kernel_size/stride/padding (square kernels)."""
        if isinstance(module, nn.ConvTranspose2d):
            return cls.of_transposed_conv(_side(module.kernel_size), _side(module.stride), _side(module.padding),
                                          _side(module.dilation))
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            return cls.of_conv(_side(module.kernel_size), _side(module.stride), _side(module.padding),
                               _side(module.dilation))
        return cls()

    @classmethod
    def of_layers(cls, modules) -> "CoordinateMap":
        """The composition of the maps of every leaf layer in ``modules``, in order."""
        result = cls()
        for module in modules:
            children = list(module.children())
            result = result.then(cls.of_layers(children) if children else cls.of_module(module))
        return result

    def then(self, after: "CoordinateMap") -> "CoordinateMap":
        """This map followed by ``after``: x -> after.scale * (scale * x + shift) + after.shift."""
        return CoordinateMap(self.scale * after.scale, after.scale * self.shift + after.shift)

    def inverse(self) -> "CoordinateMap":
        return CoordinateMap(1 / self.scale, -self.shift / self.scale)


def crop_offset(larger: CoordinateMap, target: CoordinateMap) -> int:
    """Where to start cropping map ``larger`` so that it lines up with map ``target``.

    Both maps go from the same source (the image) to a feature map. Going from target to larger,
    ``x_larger = x_target + offset`` must hold with scale 1 and a whole, non-negative offset; then
    ``larger[offset : offset + size_of_target]`` covers exactly the target's pixels.
    """
    between = target.inverse().then(larger)
    if between.scale != 1:
        raise ValueError(f"crop_offset: the maps have different scales (ratio {between.scale}), "
                         "crop only maps of the same resolution")
    if between.shift < 0 or between.shift.denominator != 1:
        raise ValueError(f"crop_offset: offset {between.shift} is not a whole non-negative number of pixels")
    return int(between.shift)


def _side(value) -> int:
    """A square layer's kernel/stride/padding, given as an int or an (h, w) pair."""
    if isinstance(value, (tuple, list)):
        if value[0] != value[1]:
            raise ValueError(f"CoordinateMap: only square kernels, strides and paddings are supported, got {value}")
        return int(value[0])
    return int(value)


def _output_side(module, size: int) -> int:
    """Output height of one layer for input height ``size`` (floor rounding, as PyTorch)."""
    if isinstance(module, nn.ConvTranspose2d):
        return conv_transpose_output_size(size, _side(module.kernel_size), _side(module.stride),
                                          _side(module.padding), _side(module.dilation), _side(module.output_padding))
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        return conv_output_size(size, _side(module.kernel_size), _side(module.stride), _side(module.padding),
                                _side(module.dilation))
    for child in module.children():
        size = _output_side(child, size)
    return size


def bilinear_upsampling(channels: int, factor: int, geometry: str) -> nn.ConvTranspose2d:
    """A x``factor`` transposed conv, one bilinear kernel per channel (no mixing), no bias.

    Kernel 2*factor, stride factor; padding factor/2 ("aligned": output = factor * input, centred)
    or 0 ("paper": output = factor * (input + 1), cropped later).
    (N, channels, h, w) -> (N, channels, h', w').
    """
    padding = factor // 2 if geometry == "aligned" else 0
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=padding, bias=False)
    nn.init.bilinear_(layer.weight)
    return layer


# ---------------------------------------------------------------------------- the networks
class FCN(Segmenter):
    """The shared body: VGG encoder, fc6/fc7 as convs, score layers, skips from pool4 and pool3.

    x: (N, in_channels, H, W) -> logits (N, num_classes, H, W). Subclasses set ``skips`` (0, 1, 2:
    FCN-32s, -16s, -8s); the final upsampling stride is 32 / 2**skips.
    """

    skips = 0

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 16,
                 fc_channels: int | None = None, dropout: float = 0.5, geometry: str = "aligned"):
        super().__init__(in_channels, num_classes)
        if geometry not in GEOMETRIES:
            raise ValueError(f"{type(self).__name__}: geometry must be one of {GEOMETRIES}, got {geometry!r}")
        if base_channels < 1:
            raise ValueError(f"{type(self).__name__}: base_channels must be >= 1, got {base_channels}")
        fc_channels = 16 * base_channels if fc_channels is None else fc_channels
        self.config = dict(in_channels=in_channels, num_classes=num_classes, base_channels=base_channels,
                           fc_channels=fc_channels, dropout=dropout, geometry=geometry)
        aligned = geometry == "aligned"

        widths = [base_channels * multiplier for multiplier, _ in VGG16_STAGES]
        self.stages = nn.ModuleList(
            nn.Sequential(conv_stage(c_in, c_out, convs, first_padding=100 if not aligned and i == 0 else None),
                          nn.MaxPool2d(2))  # the paper pads conv1_1 by 100 so that any input size works
            for i, (c_in, c_out, (_, convs)) in enumerate(zip([in_channels, *widths[:-1]], widths, VGG16_STAGES)))
        self.fc6 = nn.Sequential(nn.Conv2d(widths[4], fc_channels, 7, padding=3 if aligned else 0), nn.ReLU(),
                                 nn.Dropout(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(), nn.Dropout(dropout))
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        # Skips, coarse to fine: pool4 (stage 3) then pool3 (stage 2); scores start at zero.
        self.skip_stages = [3, 2][: self.skips]
        self.score_pools = nn.ModuleList(nn.Conv2d(widths[s], num_classes, 1) for s in self.skip_stages)
        for score in self.score_pools:
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        self.upscore2 = nn.ModuleList(bilinear_upsampling(num_classes, 2, geometry) for _ in self.skip_stages)
        self.upscore = bilinear_upsampling(num_classes, 32 // 2**self.skips, geometry)
        self.crop_offsets = self._crop_offsets()

    def _crop_offsets(self) -> tuple:
        """Offsets of each skip score inside the upsampled map it joins, then of the image in the output."""
        stage_maps, image_to = [], CoordinateMap()
        for stage in self.stages:
            image_to = image_to.then(CoordinateMap.of_layers([stage]))
            stage_maps.append(image_to)
        scores = image_to.then(CoordinateMap.of_layers([self.fc6, self.fc7, self.score_fr]))
        offsets = []
        for stage, upsample in zip(self.skip_stages, self.upscore2):
            scores = scores.then(CoordinateMap.of_module(upsample))
            offsets.append(crop_offset(stage_maps[stage], scores))
        offsets.append(crop_offset(scores.then(CoordinateMap.of_module(self.upscore)), CoordinateMap()))
        return tuple(offsets)

    def forward(self, x):
        self.check_input(x)
        return self.decode(*self.encode(x), x.shape[2:])

    def encode(self, x):
        """(N, in_channels, H, W) -> (class scores at stride 32, [pool1, ..., pool5] feature maps)."""
        pooled = []
        for stage in self.stages:
            x = stage(x)
            pooled.append(x)
        return self.score_fr(self.fc7(self.fc6(x))), pooled

    def decode(self, scores, pooled, size):
        """Fuse the scores with the skip scores (coarse to fine), upsample to the image, crop to ``size`` (H, W).

        Per skip: scores <- upscore2(scores) + crop(score_pool(pool_k)), then logits = crop(upscore(scores)).
        """
        for stage, score_pool, upsample, offset in zip(self.skip_stages, self.score_pools, self.upscore2,
                                                       self.crop_offsets):
            up = upsample(scores)
            scores = up + _crop(score_pool(pooled[stage]), offset, up.shape[2:])
        return _crop(self.upscore(scores), self.crop_offsets[-1], size)

    def _output_size(self, size: int) -> int | None:
        """Walk one side through the layers; None if a map vanishes or a crop would leave its map."""
        stage_sizes, side = [], size
        for stage in self.stages:
            side = _output_side(stage, side)
            if side < 1:
                return None
            stage_sizes.append(side)
        for layer in (self.fc6, self.fc7, self.score_fr):
            side = _output_side(layer, side)
        if side < 1:
            return None
        for stage, upsample, offset in zip(self.skip_stages, self.upscore2, self.crop_offsets):
            side = _output_side(upsample, side)
            if stage_sizes[stage] < offset + side:
                return None
        return size if _output_side(self.upscore, side) >= self.crop_offsets[-1] + size else None

    @property
    def size_rule(self) -> str:
        if self.config["geometry"] == "aligned":
            return "height and width must be multiples of the total stride 32"
        return ("the input, padded by 100, must survive five pools and the unpadded 7x7 fc6, and each "
                "upsampled map must cover the map it is cropped to")

    @classmethod
    def _from_coarser(cls, coarser: "FCN") -> "FCN":
        """A new net of this class with every weight the coarser net also has copied from it.

        The copied layers (encoder, fc6, fc7, score_fr, any shared skip) are the coarser net's; the
        new skip scores start at zero and the new upsamplings bilinear.
        """
        finer = cls(**coarser.config)
        state, copied = finer.state_dict(), coarser.state_dict()
        state.update({name: value for name, value in copied.items()
                      if name in state and state[name].shape == value.shape})
        finer.load_state_dict(state)
        return finer


def _crop(x, offset: int, size):
    """The (h, w) window of x starting at (offset, offset), or x itself when that is all of x."""
    h, w = size
    if x.shape[2:] == (h, w) and offset == 0:
        return x
    return F.crop(x, offset, offset, h, w)


class FCN32s(FCN):
    """FCN-32s: class scores at stride 32, upsampled x32 in one transposed conv (offset 19 in the paper)."""

    skips = 0


class FCN16s(FCN):
    """FCN-16s: scores x2, plus pool4's scores, then x16 (paper offsets 5, 27)."""

    skips = 1

    @classmethod
    def from_fcn32s(cls, model: FCN32s) -> "FCN16s":
        """Staged training: start from a trained FCN-32s (its skip to pool4 starts at zero)."""
        return cls._from_coarser(model)


class FCN8s(FCN):
    """FCN-8s: FCN-16s's fused scores x2, plus pool3's scores, then x8 (paper offsets 5, 9, 31)."""

    skips = 2

    @classmethod
    def from_fcn16s(cls, model: FCN16s) -> "FCN8s":
        """Staged training: start from a trained FCN-16s (its skip to pool3 starts at zero)."""
        return cls._from_coarser(model)
