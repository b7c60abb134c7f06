"""2-D convolution and transposed convolution (PyTorch's ``conv2d`` and ``conv_transpose2d``).

Convolution (really cross-correlation, as in every deep-learning library), for stride s, padding p
and dilation d along each axis:

    y[n, o, oy, ox] = b[o] + sum_{c, i, j} w[o, c, i, j] * x_padded[n, c, oy*s + i*d, ox*s + j*d]

It is linear in x, so it is a matrix ``y = A_w x``, and its gradients are

    dL/dx = A_w^T g                                  (the transposed convolution of g)
    dL/dw[o, c, i, j] = sum_{n, oy, ox} g[n, o, oy, ox] * x_padded[n, c, oy*s + i*d, ox*s + j*d]
    dL/db[o] = sum_{n, oy, ox} g[n, o, oy, ox]

A transposed convolution is exactly that ``A_w^T``: it spreads every input pixel over a kernel-sized
patch of a larger output (learned upsampling). So the two ops share three kernels with swapped roles:

    op                   forward                 dL/dx                  dL/dw
    conv2d               conv2d_forward          conv2d_backward_input  conv2d_backward_weight(g, x)
    conv_transpose2d     conv2d_backward_input   conv2d_forward         conv2d_backward_weight(x, g)

When both of conv_transpose2d's gradients are needed, one kernel call computes them together
(``conv2d_forward_and_backward_weight``): both read the patch matrix of g, built once.
The arithmetic lives in ``minidl.kernels.conv`` (Numba + BLAS); this file holds the gradient rules
and the argument checks.
"""

from __future__ import annotations

import numpy as np

from ..kernels import conv as kernels
from ..tensor import Function, Tensor
from .arguments import pair


def _check_tensors(name: str, x, weight, bias, weight_layout: str, out_axis: int):
    """Ranks, dtypes and the bias shape (weight.shape[out_axis] = C_out); returns Tensors (bias may stay None)."""
    x, weight = (t if isinstance(t, Tensor) else Tensor(t) for t in (x, weight))
    for argument, tensor, layout in (("input", x, "(N, C_in, H, W)"), ("weight", weight, weight_layout)):
        if tensor.ndim != 4:
            raise ValueError(f"{name}: {argument} must be 4-D {layout}, got shape {tensor.shape}")
        if tensor.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name}: {argument} must be float32 or float64, got {tensor.dtype}")
    if weight.dtype != x.dtype:
        raise ValueError(f"{name}: input is {x.dtype} but weight is {weight.dtype}; convert one with .float() or .double()")
    if min(weight.shape) < 1:
        raise ValueError(f"{name}: weight has an empty dimension (no channels or an empty kernel), shape {weight.shape}")
    if bias is not None:
        bias = bias if isinstance(bias, Tensor) else Tensor(bias)
        channels = weight.shape[out_axis]
        if bias.shape != (channels,):
            raise ValueError(f"{name}: bias must have shape ({channels},) (one per output channel), got {bias.shape}")
        if bias.dtype != x.dtype:
            raise ValueError(f"{name}: bias is {bias.dtype} but input is {x.dtype}")
    return x, weight, bias


def _check_channels(name: str, x: Tensor, weight: Tensor, weight_channels: int):
    if weight_channels != x.shape[1]:
        raise ValueError(f"{name}: weight has C_in={weight_channels} but input has {x.shape[1]} channels "
                         f"(input {x.shape}, weight {weight.shape})")


class _Convolution(Function):
    """What conv2d and conv_transpose2d share: save the inputs, apply the linear map, add the bias;
    backward computes only the gradients that are needed (dL/db = g summed over N, H_out, W_out)."""

    def forward(self, x, weight, bias, stride, padding, dilation, output_size):
        self.x, self.weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
        self.geometry = stride, padding, dilation
        y = self.linear_map(output_size)
        if bias is not None:
            y += bias[:, None, None]
        return y

    def backward(self, g):
        g = np.ascontiguousarray(g)
        grad_x, grad_w = self.linear_gradients(g, *self.needs_input_grad[:2])
        grad_b = g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class Conv2d(_Convolution):
    """y = conv2d(x, w) + b  (see the module docstring for the sums).

    dL/dx = conv_transpose2d(g, w),  dL/dw[o, c, i, j] = sum g[n, o, oy, ox] x_padded[n, c, oy*s + i*d, ox*s + j*d],
    dL/db = g summed over (N, H_out, W_out).
    Shapes: x (N, C_in, H, W), w (C_out, C_in, kH, kW), b (C_out,) -> y (N, C_out, H_out, W_out).
    """

    def linear_map(self, output_size):
        return kernels.conv2d_forward(self.x, self.weight, *self.geometry, output_size)

    def linear_gradients(self, g, need_x, need_w):
        grad_x = kernels.conv2d_backward_input(g, self.weight, self.x.shape[2:], *self.geometry) if need_x else None
        grad_w = kernels.conv2d_backward_weight(g, self.x, self.weight.shape[2:], *self.geometry) if need_w else None
        return grad_x, grad_w


class ConvTranspose2d(_Convolution):
    """y = conv_transpose2d(x, w) + b: the adjoint of conv2d with the same w, stride, padding, dilation.

    y = A_w^T x  where  A_w is conv2d with weight w read as (C_out=C_in', C_in=C_out');
    dL/dx = conv2d(g, w) (= A_w g),  dL/dw = conv2d's weight gradient with the roles of x and g swapped,
    dL/db = g summed over (N, H_out, W_out).
    Shapes: x (N, C_in, H, W), w (C_in, C_out, kH, kW), b (C_out,) -> y (N, C_out, H_out, W_out).
    """

    def linear_map(self, output_size):
        return kernels.conv2d_backward_input(self.x, self.weight, output_size, *self.geometry)

    def linear_gradients(self, g, need_x, need_w):
        if need_x and need_w:  # both read the patch matrix of g: one im2col for the two
            return kernels.conv2d_forward_and_backward_weight(g, self.weight, self.x, *self.geometry, self.x.shape[2:])
        grad_x = kernels.conv2d_forward(g, self.weight, *self.geometry, self.x.shape[2:]) if need_x else None
        grad_w = kernels.conv2d_backward_weight(self.x, g, self.weight.shape[2:], *self.geometry) if need_w else None
        return grad_x, grad_w


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1) -> Tensor:
    """2-D convolution, as ``torch.nn.functional.conv2d`` (without groups).

    x (N, C_in, H, W), weight (C_out, C_in, kH, kW), bias (C_out,) or None;
    stride, padding, dilation: int or (h, w) pair.
    Output (N, C_out, H_out, W_out) with H_out = floor((H + 2p - d(kH - 1) - 1) / s) + 1 (same for W).
    """
    name = "conv2d"
    x, weight, bias = _check_tensors(name, x, weight, bias, "(C_out, C_in, kH, kW)", out_axis=0)
    _check_channels(name, x, weight, weight.shape[1])
    stride, padding, dilation = (pair(name, a, v, m) for a, v, m in
                                 (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)))
    span = tuple(d * (k - 1) + 1 for d, k in zip(dilation, weight.shape[2:]))
    padded = tuple(size + 2 * p for size, p in zip(x.shape[2:], padding))
    if span[0] > padded[0] or span[1] > padded[1]:
        raise ValueError(f"{name}: kernel {weight.shape[2:]} with dilation {dilation} spans {span}, larger than the "
                         f"padded input {padded} (input {x.shape}, padding {padding})")
    output_size = tuple(kernels.conv_output_size(size, k, s, p, d) for size, k, s, p, d in
                        zip(x.shape[2:], weight.shape[2:], stride, padding, dilation))
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation, output_size=output_size)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1) -> Tensor:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d`` (without groups).

    x (N, C_in, H, W), weight (C_in, C_out, kH, kW), bias (C_out,) or None;
    stride, padding, output_padding, dilation: int or (h, w) pair; output_padding < max(stride, dilation).
    Output (N, C_out, H_out, W_out) with H_out = (H - 1) s - 2p + d(kH - 1) + output_padding + 1 (same for W):
    the size of the conv2d input that conv2d(., weight) maps onto x's size; output_padding picks
    among the sizes that a stride > 1 maps onto the same output.
    """
    name = "conv_transpose2d"
    x, weight, bias = _check_tensors(name, x, weight, bias, "(C_in, C_out, kH, kW)", out_axis=1)
    _check_channels(name, x, weight, weight.shape[0])
    stride, padding, output_padding, dilation = (
        pair(name, a, v, m) for a, v, m in (("stride", stride, 1), ("padding", padding, 0),
                                             ("output_padding", output_padding, 0), ("dilation", dilation, 1)))
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{name}: output_padding {output_padding} must be smaller than either stride {stride} "
                         f"or dilation {dilation} along each axis")
    output_size = tuple(kernels.conv_transpose_output_size(*sizes) for sizes in
                        zip(x.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding))
    if min(output_size) < 1:
        raise ValueError(f"{name}: output size would be {output_size}, it must be positive "
                         f"(input {x.shape}, weight {weight.shape}, stride {stride}, padding {padding}, "
                         f"output_padding {output_padding}, dilation {dilation})")
    return ConvTranspose2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                 output_size=output_size)
