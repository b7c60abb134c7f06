"""Exercise 11: FCN's crop offsets, from the geometry of its layers.

Where FCN adds a skip's scores to upsampled scores, both maps must cover the same image region.
Track where each pixel sits: pixel j of a map has coordinate j, and each layer is an affine map of
coordinates, x_out = scale * x_in + shift (``models/fcn.py``, ``CoordinateMap``):

    conv or pool, kernel k, stride s, padding p:   output pixel j covers input s*j - p .. s*j - p + k - 1,
        centred on s*j - p + (k-1)/2, so  scale = 1/s,  shift = (p - (k-1)/2) / s
    transposed conv:                                scale = s,  shift = (k-1)/2 - p

Composing (x -> a2 * (a1 * x + b1) + b2) gives a map from the image to any feature map. Two maps of
the same scale differ by a shift: going from target's pixels back to the image (the inverse map)
and then forward to larger's, x_larger = x_target + offset, and larger[offset : offset + size]
lines up with target. The paper's VGG16 (padded by 100) gives 19 (FCN-32s), 5 and 27 (FCN-16s).
Use fractions.Fraction so every value is exact.  Check:  python -m minidl.exercises check crop_offset
"""

from fractions import Fraction


def coordinate_map(layers):
    """layers: list of (kind, kernel, stride, padding), kind in "conv", "pool", "transposed", from the image on
    -> (scale, shift) as Fractions: the map from image coordinates to the last layer's output coordinates
    ((1, 0) for no layers)."""
    raise NotImplementedError


def crop_offset(larger, target):
    """larger, target: layer lists from the image to two maps of the same scale -> the offset (a non-negative int)
    at which to crop the larger map so that it lines up with the target."""
    raise NotImplementedError
