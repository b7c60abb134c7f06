"""Max pooling and max unpooling: a data-dependent gather and its adjoint scatter.

``max_pool2d`` first finds, per window, where the maximum sits (``indices``, flat positions
h * W + w inside each H×W plane of the input, as PyTorch). From then on both ops only move values
along those indices, so their gradients are each other:

    max_pool2d:    y = take(x, indices)      dL/dx = put_add(g, indices)
    max_unpool2d:  y = put(x, indices)       dL/dx = take(g, indices)

SegNet keeps the pooling indices of its encoder and unpools with them in its decoder.
The loops run in Numba (``minidl.kernels.pooling``), one thread per (n, c) plane; 2x2 windows with
stride 2 (every model here) take a fast path that finds the maxima and gathers them in one pass.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..kernels import pooling as kernels
from ..kernels.conv import conv_output_size
from ..tensor import Function, Tensor
from .arguments import pair


def _planes(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*C, H, W), C-contiguous (the kernels' layout)."""
    n, c, h, w = a.shape
    return np.ascontiguousarray(a).reshape(n * c, h, w)


class TakeAtIndices(Function):
    """y[n, c].flat[k] = x[n, c].flat[indices[n, c].flat[k]];  dL/dx = zeros with g added at indices.

    x: (N, C, H, W), indices: (N, C, h, w) int64 in [0, H*W) -> y: (N, C, h, w).
    Several outputs may take the same input element (overlapping windows); its gradient is the sum.
    """

    def forward(self, x, indices):
        n, c, h, w = self.input_shape = x.shape
        self.indices = _planes(indices)
        return kernels.gather_at_indices(_planes(x).reshape(n * c, h * w), self.indices).reshape(indices.shape)

    def backward(self, g):
        _, _, h, w = self.input_shape
        grad = kernels.scatter_at_indices(_planes(g), self.indices, h * w, accumulate=True)
        return grad.reshape(self.input_shape)


class TakeFoundMaxima(TakeAtIndices):
    """``TakeAtIndices`` given y as well: the 2x2 pooling kernel finds each maximum and its index in
    one pass, so there is nothing left to gather. The backward is TakeAtIndices's scatter-add."""

    def forward(self, x, indices, values):
        self.input_shape, self.indices = x.shape, _planes(indices)
        return values


class PutAtIndices(Function):
    """y[n, c].flat[indices[n, c].flat[k]] = x[n, c].flat[k], zeros elsewhere;  dL/dx = g taken at indices.

    x, indices: (N, C, h, w) -> y: (N, C, H, W) with ``output_size = (H, W)``. A repeated index keeps
    the last value written (as PyTorch on CPU); the gradient is then still the plain gather.
    """

    def forward(self, x, indices, output_size):
        height, width = output_size
        self.input_shape, self.indices = x.shape, _planes(indices)
        y = kernels.scatter_at_indices(_planes(x), self.indices, height * width, accumulate=False)
        return y.reshape(*x.shape[:2], height, width)

    def backward(self, g):
        n, c, h, w = g.shape
        return kernels.gather_at_indices(g.reshape(n * c, h * w), self.indices).reshape(self.input_shape)


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Length of a pooled axis, PyTorch's rule:

        floor-or-ceil((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1,

    and with ``ceil_mode`` the last window must start inside the input or the left padding
    (otherwise it is dropped).
    """
    # ceil(a / s) = floor((a + s - 1) / s): rounding up is the floor rule on an input s - 1 longer
    out = conv_output_size(size + (stride - 1 if ceil_mode else 0), kernel, stride, padding, dilation)
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _check_input(op: str, x) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{op}: input must be float32 or float64, got {x.dtype}")
    return x


def _every_window_touches_input(size, kernel, stride, padding, dilation, out) -> bool:
    """True when every window along this axis has at least one tap inside [0, size)."""
    taps = np.arange(out)[:, None] * stride - padding + np.arange(kernel)[None, :] * dilation
    return bool(((taps >= 0) & (taps < size)).any(axis=1).all())


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    y[n, c, oy, ox] = max over i < kH, j < kW of x_pad[n, c, oy*sH + i*dH, ox*sW + j*dW]
    where x_pad is x with ``padding`` -inf cells on each side (so padding never wins).
    dL/dx: each g[n, c, oy, ox] goes to the one input element that won its window (the first
    maximum in row-major window order); elements that won several windows add those up.

    input: (N, C, H, W) -> (N, C, H_out, W_out), H_out = ``pool_output_size(H, ...)``.
    kernel_size, stride (default: kernel_size), padding (<= kernel_size // 2), dilation: int or pair.
    return_indices: also return the int64 Tensor of argmax positions, flat per H×W input plane
    (what ``max_unpool2d`` needs).
    """
    op = "max_pool2d"
    x = _check_input(op, input)
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    dilation = pair(op, "dilation", dilation, 1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding must be at most half of kernel_size, got padding={padding} "
                         f"for kernel_size={kernel}")
    in_size = x.shape[2:]
    out_size = tuple(pool_output_size(s, k, st, p, d, ceil_mode)
                     for s, k, st, p, d in zip(in_size, kernel, stride, padding, dilation))
    if min(out_size) < 1:
        raise ValueError(f"{op}: the window (kernel_size={kernel}, dilation={dilation}) is larger than the "
                         f"padded input: input {x.shape} with padding={padding} gives output size {out_size}")
    if not all(map(_every_window_touches_input, in_size, kernel, stride, padding, dilation, out_size)):
        raise ValueError(f"{op}: some windows lie entirely in the padding or between dilated taps "
                         f"(input {x.shape}, kernel_size={kernel}, stride={stride}, padding={padding}, "
                         f"dilation={dilation}); they would have no maximum")
    if kernel == stride == (2, 2) and padding == (0, 0) and dilation == (1, 1) and out_size == (
            in_size[0] // 2, in_size[1] // 2):  # the fast path for the pooling of every model here
        values, planes = kernels.max_pool2d_2x2(_planes(x.data))
        indices = planes.reshape(*x.shape[:2], *out_size)
        y = TakeFoundMaxima.apply(x, indices=indices, values=values.reshape(indices.shape))
    else:
        planes = kernels.max_pool2d_indices(_planes(x.data), kernel, stride, padding, dilation, out_size)
        indices = planes.reshape(*x.shape[:2], *out_size)
        y = TakeAtIndices.apply(x, indices=indices)
    return (y, Tensor(indices)) if return_indices else y


def max_unpool_output_size(input_size, kernel_size, stride, padding, output_size=None) -> tuple:
    """(H, W) of ``max_unpool2d``: (h - 1) * stride - 2 * padding + kernel_size per axis, unless
    ``output_size`` ((H, W) or (N, C, H, W)) picks one of the sizes a pooling could have come from:
    strictly within ``stride`` of that default (PyTorch's rule)."""
    op = "max_unpool2d"
    default = tuple((h - 1) * s - 2 * p + k for h, k, s, p in zip(input_size, kernel_size, stride, padding))
    if output_size is None:
        size = default
    else:
        size = tuple(output_size)[-2:] if len(output_size) in (2, 4) else None
        if size is None or not all(isinstance(v, numbers.Integral) for v in size):
            raise ValueError(f"{op}: output_size must be (H, W) or (N, C, H, W), got {output_size!r}")
        for axis, (want, base, s) in enumerate(zip(size, default, stride)):
            if not base - s < want < base + s:
                raise ValueError(f"{op}: output_size {tuple(output_size)} is invalid: dim {axis} must lie "
                                 f"strictly between {base - s} and {base + s} for input size {tuple(input_size)}")
    if min(size) < 1:
        raise ValueError(f"{op}: output size {size} is not positive (input size {tuple(input_size)}, "
                         f"kernel_size={kernel_size}, stride={stride}, padding={padding})")
    return tuple(int(v) for v in size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Partial inverse of ``max_pool2d``, as ``torch.nn.functional.max_unpool2d``.

    y[n, c].flat[indices[n, c, i, j]] = x[n, c, i, j], every other element of y is 0.
    dL/dx[n, c, i, j] = g[n, c].flat[indices[n, c, i, j]].

    input: (N, C, h, w); indices: same shape, int, each in [0, H*W) (from ``max_pool2d(...,
    return_indices=True)``) -> (N, C, H, W), (H, W) from ``max_unpool_output_size``.
    """
    op = "max_unpool2d"
    x = _check_input(op, input)
    index = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
    if not np.issubdtype(index.dtype, np.integer):
        raise TypeError(f"{op}: indices must be an integer tensor, got dtype {index.dtype}")
    if index.shape != x.shape:
        raise ValueError(f"{op}: indices must have the input's shape {x.shape}, got {index.shape}")
    kernel = pair(op, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else pair(op, "stride", stride, 1)
    padding = pair(op, "padding", padding, 0)
    height, width = max_unpool_output_size(x.shape[2:], kernel, stride, padding, output_size)
    if index.size and (index.min() < 0 or index.max() >= height * width):
        bad = tuple(int(k) for k in np.argwhere((index < 0) | (index >= height * width))[0])
        raise ValueError(f"{op}: indices must lie in [0, {height * width}) for output size ({height}, {width}); "
                         f"found {index[bad]} at {bad}")
    return PutAtIndices.apply(x, indices=index.astype(np.int64, copy=False), output_size=(height, width))
