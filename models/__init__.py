"""Models built from ``minidl.nn``: UNet, SegNet and FCN-32s/16s/8s, a CAM classifier, a simplified Mask R-CNN.

    from models import UNet, build_segmenter
    model = UNet(in_channels=3, num_classes=2, base_channels=16)      # (N, 3, H, W) -> (N, 2, H, W)
    model = build_segmenter("fcn8s", base_channels=16)               # the same, by name
"""

from .classifier import CAMClassifier
from .fcn import FCN, FCN8s, FCN16s, FCN32s, CoordinateMap, crop_offset
from .mask_rcnn import MaskRCNN, MaskRCNNConfig
from .segmenter import Segmenter
from .segnet import SegNet
from .unet import UNet

SEGMENTERS = {"unet": UNet, "segnet": SegNet, "fcn32s": FCN32s, "fcn16s": FCN16s, "fcn8s": FCN8s}


def build_segmenter(name: str, **kwargs) -> Segmenter:
    """The model called ``name`` (a key of ``SEGMENTERS``), built with ``kwargs`` (in_channels, num_classes, ...)."""
    if name not in SEGMENTERS:
        raise ValueError(f"build_segmenter: unknown model {name!r}; choose one of {sorted(SEGMENTERS)}")
    return SEGMENTERS[name](**kwargs)


__all__ = ["CAMClassifier", "MaskRCNN", "MaskRCNNConfig",
           "Segmenter", "UNet", "SegNet", "FCN", "FCN32s", "FCN16s", "FCN8s", "CoordinateMap", "crop_offset",
           "SEGMENTERS", "build_segmenter"]
