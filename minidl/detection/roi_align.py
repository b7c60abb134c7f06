"""RoIAlign: a fixed-size feature patch for every region of interest, differentiable in the features.

Mask R-CNN's second stage looks at each proposal through ``roi_align``: the proposal's box, mapped
onto the feature map by ``spatial_scale``, is cut into P_h x P_w bins, and each bin is the mean of
bilinear samples on a regular grid inside it. Nothing is rounded to the feature grid (RoIPool's
flaw), so a shift of the box by a fraction of a cell shifts the patch by the same fraction, which
is what makes pixel-accurate masks possible. The math and the kernels are in
``minidl.kernels.roi_align``; as a linear map of the features, y = S x, its gradient is S^T g.

Semantics and argument order are those of ``torchvision.ops.roi_align``:
``roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False)``,
with ``boxes`` either a (K, 5) array of rows (batch_index, x1, y1, x2, y2) or a list of per-image
(L_i, 4) arrays. Use ``aligned=True`` (Detectron2's choice): it samples pixel centres correctly;
``aligned=False`` keeps the legacy half-pixel shift and 1x1 minimum box size.

Parity with torchvision, as far as it can be stated without running it (it is not installed): the
same sample positions, the same clamping of samples near the border and zeroing of samples more
than one pixel outside, the same adaptive grid ceil(size / bins), no gradient for the boxes. One
difference: the sample geometry is computed in float64 here (torchvision uses the input's dtype),
so float32 outputs can differ in the last bits. The tests check the kernels against an
independent NumPy twin (an explicit sampling matrix) and against values worked out by hand.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..kernels import roi_align as kernels
from ..tensor import Function, Tensor


class RoIAlign(Function):
    """y[r] = S_r x[batch_index[r]];  dL/dx = sum_r S_r^T g[r];  boxes get no gradient.

    x: (N, C, H, W) -> y: (R, C, P_h, P_w); boxes (R, 4) and batch_index (R,) are options.
    """

    def forward(self, x, boxes, batch_index, output_size, spatial_scale, sampling_ratio, aligned):
        self.input_shape, self.boxes, self.batch_index = x.shape, boxes, batch_index
        self.options = spatial_scale, sampling_ratio, aligned
        y = kernels.roi_align_forward(channels_last(x), boxes, batch_index, spatial_scale, output_size,
                                      sampling_ratio, aligned)
        return y.transpose(0, 3, 1, 2)

    def backward(self, g):
        spatial_scale, sampling_ratio, aligned = self.options
        n, c, h, w = self.input_shape
        grad = kernels.roi_align_backward(channels_last(g), self.boxes, self.batch_index, (n, h, w, c),
                                          spatial_scale, sampling_ratio, aligned)
        return grad.transpose(0, 3, 1, 2)


def channels_last(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> a C-contiguous (N, H, W, C) copy, the kernels' layout."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def boxes_to_rois(boxes, dtype=np.float64) -> np.ndarray:
    """A list of per-image (L_i, 4) boxes -> one (sum L_i, 5) array of (batch_index, x1, y1, x2, y2)."""
    parts = [np.asarray(b.data if isinstance(b, Tensor) else b, dtype=dtype).reshape(-1, 4) for b in boxes]
    indices = [np.full((len(b), 1), i, dtype=dtype) for i, b in enumerate(parts)]
    return np.concatenate([np.concatenate(indices), np.concatenate(parts)], axis=1) if parts \
        else np.zeros((0, 5), dtype=dtype)


def roi_align(input, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False) -> Tensor:
    """RoIAlign (He et al., Mask R-CNN, 2017), as ``torchvision.ops.roi_align``.

    input: (N, C, H, W) features, float32 or float64.
    boxes: (K, 5) rows (batch_index, x1, y1, x2, y2) in image coordinates, or a list of N arrays
           (L_i, 4); no gradient flows to them. K may be 0 (the result is then (0, C, P_h, P_w)).
    output_size: int or (P_h, P_w); spatial_scale: feature cells per image pixel (1/4 for a
    stride-4 map); sampling_ratio: grid points per bin and axis (<= 0: ceil(box size / bins)).
    Returns (K, C, P_h, P_w) in input's dtype; see ``minidl.kernels.roi_align`` for the formula.
    """
    op = "roi_align"
    x = input if isinstance(input, Tensor) else Tensor(input)
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64):
        raise ValueError(f"{op}: input must be a float32/float64 (N, C, H, W) tensor, got {x.dtype} {x.shape}")
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != x.shape[0]:
            raise ValueError(f"{op}: a list of boxes needs one (L_i, 4) array per image, got {len(boxes)} "
                             f"arrays for a batch of {x.shape[0]}")
        rois = boxes_to_rois(boxes)
    else:
        rois = np.asarray(boxes.data if isinstance(boxes, Tensor) else boxes, dtype=np.float64)
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"{op}: boxes must be (K, 5) rows (batch_index, x1, y1, x2, y2) or a list of (L, 4) "
                         f"arrays, got shape {rois.shape}")
    batch_index = rois[:, 0].astype(np.int64)
    if len(rois) and (not np.array_equal(batch_index, rois[:, 0]) or batch_index.min() < 0
                      or batch_index.max() >= x.shape[0]):
        raise ValueError(f"{op}: batch indices (column 0 of boxes) must be integers in [0, {x.shape[0]}), "
                         f"got values in [{rois[:, 0].min()}, {rois[:, 0].max()}]")
    if not np.isfinite(rois).all():
        raise ValueError(f"{op}: boxes contain NaN or infinite coordinates")
    size = (output_size, output_size) if isinstance(output_size, numbers.Integral) else tuple(output_size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s >= 1 for s in size):
        raise ValueError(f"{op}: output_size must be a positive int or a pair of them, got {output_size!r}")
    return RoIAlign.apply(x, boxes=np.ascontiguousarray(rois[:, 1:]), batch_index=batch_index,
                          output_size=(int(size[0]), int(size[1])), spatial_scale=float(spatial_scale),
                          sampling_ratio=int(sampling_ratio), aligned=bool(aligned))
