"""The convolution as one matrix product, in plain NumPy: the lesson, and the twin of ``minidl.kernels.conv``.

im2col ("image to columns") copies every receptive field of a batch of images into one column of a
patch matrix (stride s, padding p, dilation d; entries that fall in the padding are 0):

    cols[(c, i, j), (n, oy, ox)] = x_padded[n, c, oy*sh + i*dh, ox*sw + j*dw]

With the weight seen as a (C_out, C_in*kH*kW) matrix W and any (N, C, h, w) array A seen as the
(C, N*h*w) matrix mat(A) (channels as rows), the convolution and its two gradients are products:

    mat(y)  = W @ cols
    dL/dW   = mat(g) @ cols^T                   g = dL/dy
    dL/dx   = col2im(W^T @ mat(g))

col2im is the adjoint of im2col: it adds every entry of a patch matrix back onto the input pixel it
was copied from (a pixel that sits in several receptive fields receives several additions).
(Chellapilla, Puri & Simard, "High Performance Convolutional Neural Networks for Document
Processing", 2006; Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016.)
"""

from __future__ import annotations

import numpy as np


def _pad(x, padding):
    return np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))


def _as_matrix(a):
    """(N, C, h, w) -> (C, N*h*w): channels as rows, images and positions as columns."""
    return a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1)


def im2col(x, kernel_size, stride, padding, dilation, output_size):
    """x: (N, C, H, W) -> cols: (C*kH*kW, N*H_out*W_out), the patch matrix above.

    ``as_strided`` views the padded input as patches[n, c, i, j, oy, ox] without copying; the
    reshape into a matrix makes the copy. output_size (H_out, W_out) may be smaller than the full
    output: then only the first H_out x W_out positions are taken.
    """
    n_batch, channels = x.shape[:2]
    x_padded = np.ascontiguousarray(_pad(x, padding))
    s_n, s_c, s_h, s_w = x_padded.strides
    patches = np.lib.stride_tricks.as_strided(
        x_padded,
        shape=(n_batch, channels, *kernel_size, *output_size),
        strides=(s_n, s_c, s_h * dilation[0], s_w * dilation[1], s_h * stride[0], s_w * stride[1]),
        writeable=False,
    )
    return patches.transpose(1, 2, 3, 0, 4, 5).reshape(channels * kernel_size[0] * kernel_size[1], -1)


def col2im(cols, image_size, kernel_size, stride, padding, dilation, output_size):
    """cols: (C*kH*kW, N*H_out*W_out) -> x: (N, C, H, W) with image_size = (H, W):
    x[n, c, y, x] = sum of the entries of cols copied from pixel (y, x).

    For each kernel offset (i, j) the pixels it reads form one strided slice of the padded image,
    so the sum is one slice-add per offset; the padding is cropped at the end.
    """
    (kh, kw), (sh, sw), (dh, dw), (out_h, out_w) = kernel_size, stride, dilation, output_size
    channels = cols.shape[0] // (kh * kw)
    patches = cols.reshape(channels, kh, kw, -1, out_h, out_w)  # [c, i, j, n, oy, ox]
    x_padded = np.zeros((patches.shape[3], channels, image_size[0] + 2 * padding[0],
                         image_size[1] + 2 * padding[1]), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
            columns = slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)
            x_padded[:, :, rows, columns] += patches[:, i, j].transpose(1, 0, 2, 3)
    return x_padded[:, :, padding[0]:padding[0] + image_size[0], padding[1]:padding[1] + image_size[1]]


def conv2d_forward(x, weight, stride, padding, dilation, output_size):
    """y = W @ im2col(x):  x (N, C_in, H, W), weight (C_out, C_in, kH, kW) -> y (N, C_out, H_out, W_out)."""
    cols = im2col(x, weight.shape[2:], stride, padding, dilation, output_size)
    y = weight.reshape(len(weight), -1) @ cols  # (C_out, N*H_out*W_out)
    return y.reshape(len(weight), len(x), *output_size).transpose(1, 0, 2, 3)


def conv2d_backward_input(g, weight, image_size, stride, padding, dilation):
    """dL/dx = col2im(W^T @ g):  g (N, C_out, H_out, W_out) -> dL/dx (N, C_in, H, W), image_size = (H, W)."""
    cols_grad = weight.reshape(len(weight), -1).T @ _as_matrix(g)  # (C_in*kH*kW, N*H_out*W_out)
    return col2im(cols_grad, image_size, weight.shape[2:], stride, padding, dilation, g.shape[2:])


def conv2d_backward_weight(g, x, kernel_size, stride, padding, dilation):
    """dL/dW = g @ im2col(x)^T:  g (N, C_out, H_out, W_out), x (N, C_in, H, W) -> (C_out, C_in, kH, kW)."""
    cols = im2col(x, kernel_size, stride, padding, dilation, g.shape[2:])
    return (_as_matrix(g) @ cols.T).reshape(g.shape[1], x.shape[1], *kernel_size)
