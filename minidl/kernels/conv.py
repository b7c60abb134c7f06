"""2-D convolution on raw arrays: im2col / col2im in Numba, the multiply-adds in BLAS.

A convolution is a matrix product in disguise (``minidl.kernels.reference.conv`` shows it in plain
NumPy, a screen per function). With cols = im2col(x), the (C_in*kH*kW, N*H_out*W_out) patch matrix,
W the weight as a (C_out, C_in*kH*kW) matrix and g = dL/dy as a (C_out, N*H_out*W_out) matrix:

    y     = W @ cols
    dL/dW = g @ cols^T
    dL/dx = col2im(W^T @ g)

The functions below compute exactly that, tile by tile on worker threads (``conv_fast.py``), except
3x3, stride-1 convolutions of many channels, which take Winograd's F(2x2, 3x3) with 2.25x fewer
multiply-adds (``conv_fast_winograd.py``: the same sums in another order), and the forward and dL/dW
of stride-1 convolutions of few input channels (a first layer), whose thin patch matrix is not worth
its copy: they are summed directly (``conv_fast_direct.py``); and
each has a NumPy twin of the same name in the reference module, except
``conv2d_forward_and_backward_weight``, which the tests compare with the twins of its two products.
The im2col and Winograd paths call NumPy's OpenBLAS from Numba (``blas.py``); where there is none to
call, the functions below compute with those NumPy twins instead.
Sizes follow PyTorch; kernel_size, stride, padding, dilation and output sizes are (h, w) pairs.
"""

from __future__ import annotations

from . import blas, conv_fast, conv_fast_direct, conv_fast_winograd
from .im2col import col2im, im2col  # noqa: F401  (public here, beside their twins' names)
from .reference import conv as reference


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution (or pooling window) along one axis:
    floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                               output_padding: int = 0) -> int:
    """Output length of a transposed convolution along one axis: (size - 1)s - 2p + d(k-1) + output_padding + 1,
    the length of a conv2d input that ``conv_output_size`` maps back onto ``size``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv2d_forward(x, weight, stride, padding, dilation, output_size):
    """y = W @ im2col(x):  x (N, C_in, H, W), weight (C_out, C_in, kH, kW) -> y (N, C_out, H_out, W_out)."""
    c_out, c_in = weight.shape[:2]
    if blas.functions() is None:
        return reference.conv2d_forward(x, weight, stride, padding, dilation, output_size)
    if conv_fast_direct.applies(weight.shape[2:], stride, c_in):
        return conv_fast_direct.conv2d_forward(x, weight, padding, dilation, output_size)
    if conv_fast_winograd.applies(weight.shape[2:], stride, dilation, c_in, c_out, output_size):
        return conv_fast_winograd.conv2d_forward(x, weight, padding, output_size)
    return conv_fast.patch_products(x, weight.shape[2:], stride, padding, dilation, output_size, weight=weight)[0]


def conv2d_backward_input(g, weight, image_size, stride, padding, dilation):
    """dL/dx = col2im(W^T @ g):  g (N, C_out, H_out, W_out) -> dL/dx (N, C_in, H, W), image_size = (H, W)."""
    c_out, c_in = weight.shape[:2]  # the flipped convolution maps C_out channels onto C_in
    if blas.functions() is None:
        return reference.conv2d_backward_input(g, weight, image_size, stride, padding, dilation)
    if max(padding) <= 2 and conv_fast_winograd.applies(weight.shape[2:], stride, dilation, c_out, c_in, image_size):
        return conv_fast_winograd.input_gradient(g, weight, image_size, padding)
    return conv_fast.input_gradient(g, weight, image_size, stride, padding, dilation)


def conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation):
    """dL/dW = g @ im2col(x)^T:  g (N, C_out, H_out, W_out), x (N, C_in, H, W) -> (C_out, C_in, kH, kW)."""
    if blas.functions() is None:
        return reference.conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation)
    if conv_fast_direct.applies(kernel_size, stride, x.shape[1]):
        return conv_fast_direct.weight_gradient(g, x, kernel_size, padding, dilation)
    if conv_fast_winograd.applies(kernel_size, stride, dilation, x.shape[1], g.shape[1], g.shape[2:]):
        return conv_fast_winograd.weight_gradient(g, x, padding)
    return conv_fast.patch_products(x, kernel_size, stride, padding, dilation, g.shape[2:], g=g)[1]


def conv2d_forward_and_backward_weight(x, weight, g, stride, padding, dilation, output_size):
    """(conv2d_forward(x, weight, ...), conv2d_backward_weight(g, x, ...)) with one im2col of x for both.

    conv_transpose2d's backward needs exactly these two (its dL/dx is the conv2d of the upstream
    gradient, its dL/dW the weight gradient of that conv2d), and sharing the patch matrix saves a
    pass over it.
    """
    c_out, c_in = weight.shape[:2]
    if (blas.functions() is None or conv_fast_direct.applies(weight.shape[2:], stride, c_in)
            or conv_fast_winograd.applies(weight.shape[2:], stride, dilation, c_in, c_out, output_size)):
        return (conv2d_forward(x, weight, stride, padding, dilation, output_size),
                conv2d_backward_weight(g, x, weight.shape[2:], stride, padding, dilation))
    return conv_fast.patch_products(x, weight.shape[2:], stride, padding, dilation, output_size, weight=weight, g=g)
