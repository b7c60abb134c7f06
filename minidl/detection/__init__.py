"""``minidl.detection``: the pieces of a two-stage instance-segmentation detector (Mask R-CNN).

    shapes       synthetic data: squares, circles, triangles with boxes, masks and class ids
    boxes        box area, IoU, delta encoding, clipping, NMS (NumPy)
    anchors      the RPN's reference boxes on a feature grid
    sampling     matching boxes to ground truth, balanced sampling of training boxes
    roi_align    RoIAlign, differentiable in the features (Numba kernels in minidl.kernels.roi_align)
    masks        ground-truth masks onto box grids (targets) and predicted masks back into images
    losses       the smooth L1 box-regression loss
    evaluation   COCO-style box and mask AP, RPN recall

The model that puts them together is ``models.mask_rcnn.MaskRCNN``.
"""

from .roi_align import roi_align

__all__ = ["roi_align"]
