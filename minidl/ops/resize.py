"""Changing the spatial size of feature maps: interpolation, cropping and centre padding.

``interpolate`` resamples (the decoder of a UNet or FCN upsamples with it); ``crop``,
``center_crop`` and ``center_pad_or_crop`` cut or pad without resampling, to line up feature maps
of slightly different sizes (UNet skip connections with valid convolutions, FCN's offset crops).

Interpolation follows PyTorch's coordinate rules exactly (so outputs match torch element for
element). For output index o along an axis of input length ``n_in`` and output length ``n_out``,
with ``scale = 1 / scale_factor`` when a scale factor was given, else ``n_in / n_out``:

    nearest:                   src = min(floor(o * scale), n_in - 1)     (float32 arithmetic;
                               PyTorch copies when n_out = n_in and takes o // 2 when n_out = 2 n_in)
    bilinear, align_corners:   src = o * (n_in - 1) / (n_out - 1)        (corner pixels line up)
    bilinear, otherwise:       src = max((o + 0.5) * scale - 0.5, 0)     (pixel centres line up;
                               computed in the input's dtype; PyTorch copies when n_out = n_in)

Bilinear reads the two neighbours i0 = floor(src), i1 = min(i0 + 1, n_in - 1) with weights
1 - t and t, t = src - i0, along each axis.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..kernels import interpolate as kernels
from ..tensor import Function, Tensor
from .shape import getitem, pad


def nearest_source_index(in_size: int, out_size: int, scale_factor=None) -> np.ndarray:
    """PyTorch's legacy 'nearest' source index for each output position (int64, length out_size)."""
    out = np.arange(out_size)
    if out_size == in_size:
        return out
    if out_size == 2 * in_size:
        return out // 2
    ratio = np.float32(1.0 / scale_factor) if scale_factor else np.float32(in_size) / np.float32(out_size)
    return np.minimum(np.floor(out.astype(np.float32) * ratio).astype(np.int64), in_size - 1)


def linear_source_taps(in_size: int, out_size: int, scale_factor, align_corners: bool, dtype) -> tuple:
    """(index0, index1, weight0, weight1) for each output position, computed in ``dtype`` as PyTorch."""
    real = np.dtype(dtype).type
    out = np.arange(out_size, dtype=dtype)
    if out_size == in_size:  # PyTorch copies, even when a scale_factor near 1 says otherwise
        source = out
    elif align_corners:
        ratio = real(in_size - 1) / real(out_size - 1) if out_size > 1 else real(0)
        source = ratio * out
    else:
        ratio = real(1.0 / scale_factor) if scale_factor else real(in_size) / real(out_size)
        source = np.maximum(ratio * (out + real(0.5)) - real(0.5), real(0))
    index0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    weight1 = np.clip(source - index0.astype(dtype), real(0), real(1))
    index1 = index0 + (index0 < in_size - 1)
    return index0, index1, real(1) - weight1, weight1


class Resize(Function):
    """y = A_rows x A_cols^T for each (n, c) plane;  dL/dx = A_rows^T g A_cols.

    Row o of A_rows holds the weights with which output row o mixes the input rows: a single 1
    at rows[o] for 'nearest', 1 - t and t at index0[o] and index1[o] for 'bilinear' (A_cols alike).
    x: (N, C, H, W) -> y: (N, C, H_out, W_out).
    """

    KERNELS = {"nearest": (kernels.resize_nearest, kernels.resize_nearest_backward),  # mode: (forward, backward)
               "bilinear": (kernels.resize_bilinear, kernels.resize_bilinear_backward)}

    def forward(self, x, mode, rows, cols, output_size):
        n, c, h, w = self.input_shape = x.shape
        self.mode, self.rows, self.cols = mode, rows, cols
        resize, _ = self.KERNELS[mode]
        return resize(np.ascontiguousarray(x).reshape(n * c, h, w), rows, cols).reshape(n, c, *output_size)

    def backward(self, g):
        n, c, h, w = self.input_shape
        _, resize_backward = self.KERNELS[self.mode]
        g = np.ascontiguousarray(g).reshape(n * c, *g.shape[2:])
        return resize_backward(g, self.rows, self.cols, h, w).reshape(self.input_shape)


def _as_tensor(op: str, x, min_ndim: int, layout: str) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: input must be {layout}, got shape {x.shape}")
    return x


def _two(op: str, name: str, value, kind) -> tuple:
    """A number or a pair of numbers of type ``kind`` (numbers.Integral or numbers.Real)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(isinstance(v, kind) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{op}: {name} must be a number or a pair of numbers ({kind.__name__}), got {value!r}")
    return pair


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None) -> Tensor:
    """Resize the H×W planes of ``input``, as ``torch.nn.functional.interpolate`` (modes 'nearest', 'bilinear').

    Give exactly one of ``size`` (int or (H_out, W_out)) and ``scale_factor`` (float or pair;
    H_out = floor(H * scale_factor)). With a scale factor the source coordinates use 1 / scale_factor,
    like PyTorch, unless ``recompute_scale_factor=True`` (then H / H_out). See the module docstring
    for the coordinate rules; ``align_corners`` (bilinear only, default False).

    Both modes are linear in x: y = A_rows x A_cols^T per (n, c) plane, so dL/dx = A_rows^T g A_cols.
    input: (N, C, H, W) float32 or float64 -> (N, C, H_out, W_out), same dtype.
    """
    op = "interpolate"
    x = input if isinstance(input, Tensor) else Tensor(input)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{op}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners can only be set with mode='bilinear', got mode={mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    if recompute_scale_factor and size is not None:
        raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size")
    in_size = x.shape[2:]
    if size is not None:
        out_size, scales = _two(op, "size", size, numbers.Integral), (None, None)
    else:
        scales = _two(op, "scale_factor", scale_factor, numbers.Real)
        if min(scales) <= 0:
            raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor!r}")
        out_size = tuple(int(np.floor(n * float(s))) for n, s in zip(in_size, scales))
        if recompute_scale_factor:
            scales = (None, None)
    if min(out_size) < 1 or min(in_size) < 1:
        raise ValueError(f"{op}: input and output sizes must be positive, got input {x.shape} and "
                         f"output size {tuple(out_size)}")
    if mode == "nearest":
        rows, cols = (nearest_source_index(n_in, n_out, s) for n_in, n_out, s in zip(in_size, out_size, scales))
    else:
        rows, cols = (linear_source_taps(n_in, n_out, s, bool(align_corners), x.dtype)
                      for n_in, n_out, s in zip(in_size, out_size, scales))
    return Resize.apply(x, mode=mode, rows=rows, cols=cols, output_size=tuple(out_size))


def crop(input, top: int, left: int, height: int, width: int) -> Tensor:
    """The window x[..., top:top+height, left:left+width], as ``torchvision.transforms.functional.crop``
    (but the window must lie inside x; FCN crops its upsampled scores this way with a fixed offset).

    dL/dx = g inside the window, 0 outside.  input: (..., H, W) -> (..., height, width).
    """
    x = _as_tensor("crop", input, 2, "(..., H, W)")
    for name, value in dict(top=top, left=left, height=height, width=width).items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise TypeError(f"crop: {name} must be an int, got {value!r}")
    in_h, in_w = x.shape[-2:]
    if min(top, left) < 0 or min(height, width) < 1 or top + height > in_h or left + width > in_w:
        raise ValueError(f"crop: window top={top}, left={left}, height={height}, width={width} does not lie "
                         f"inside the input of size ({in_h}, {in_w})")
    return getitem(x, (Ellipsis, slice(top, top + height), slice(left, left + width)))


def _target_size(op: str, output_size) -> tuple:
    size = _two(op, "output_size", output_size, numbers.Integral)
    if min(size) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    return size


def center_crop(input, output_size) -> Tensor:
    """The centred (h, w) window, as ``torchvision.transforms.functional.center_crop``.

    top = round((H - h) / 2), left = round((W - w) / 2)  (Python's round: halves go to even, as
    torchvision). The original UNet crops its encoder features this way before concatenating.
    input: (..., H, W) with H >= h, W >= w -> (..., h, w); output_size: int or (h, w).
    """
    height, width = _target_size("center_crop", output_size)
    x = _as_tensor("center_crop", input, 2, "(..., H, W)")
    in_h, in_w = x.shape[-2:]
    if height > in_h or width > in_w:
        raise ValueError(f"center_crop: output_size ({height}, {width}) is larger than the input's "
                         f"({in_h}, {in_w}); use center_pad_or_crop to pad")
    return crop(x, int(round((in_h - height) / 2)), int(round((in_w - width) / 2)), height, width)


def center_pad_or_crop(input, output_size) -> Tensor:
    """Bring the last two dims to ``output_size`` by cropping or zero-padding around the centre.

    A dim that is too large is cropped as ``center_crop`` does; a dim that is too small by d gets
    d // 2 zeros before and d - d // 2 after. UNet decoders use it to match an upsampled map to its
    skip connection when the input size is not a multiple of 2**depth.
    dL/dx = g cropped (or padded) back.  input: (..., H, W) -> (..., h, w).
    """
    height, width = _target_size("center_pad_or_crop", output_size)
    x = _as_tensor("center_pad_or_crop", input, 2, "(..., H, W)")
    extra_h, extra_w = max(height - x.shape[-2], 0), max(width - x.shape[-1], 0)
    if extra_h or extra_w:
        x = pad(x, (extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2))
    return center_crop(x, (height, width)) if x.shape[-2:] != (height, width) else x
