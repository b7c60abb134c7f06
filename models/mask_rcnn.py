"""A small Mask R-CNN (He, Gkioxari, Dollár & Girshick, 2017) on a single stride-4 feature map.

Two stages share one convolutional backbone:

    stage          module      maps                                                     trained by
    backbone       Backbone    5 x (3x3 conv, batch norm, ReLU), two of stride 2:
                               image (N, 3, H, W) -> features (N, C, H/4, W/4)          every loss
    proposals      RPNHead     features -> per anchor: objectness logit, 4 deltas       rpn_objectness, rpn_box
                   (NumPy)     decode the best anchors, clip, NMS -> ~50 proposals/img  (no gradient)
    box head       BoxHead     roi_align(features, proposal, 7x7) -> class logits (K+1),
                               class-specific deltas (K+1) x 4                          roi_class, roi_box
    mask head      MaskHead    roi_align(features, box, 14x14) -> convs -> 2x up-conv
                               -> K mask logits (28x28), one per class                   mask

Training (``model(images, targets)`` returns the five losses): anchors are matched to ground truth
(IoU >= 0.7 positive, < 0.3 negative, plus each object's best anchor) and a balanced 128 per image
train the RPN; proposals, with the ground-truth boxes appended, are matched again (IoU >= 0.5
positive) and 64 per image, a quarter positive, train the box head; the positives also train the
mask head, with a per-pixel sigmoid cross-entropy on the channel of the object's true class only
(classes do not compete for pixels). Proposals are treated as constants (no gradient flows through
box decoding), as in Faster R-CNN's approximate joint training.

Inference (``model.eval(); model(images)``): per-class boxes from the box head, score threshold,
per-class NMS, then the mask head on the final boxes; each mask's true-class channel is pasted
into the image (``minidl.detection.masks.paste_masks``) and thresholded at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidl import functional as F
from minidl import nn
from minidl.detection.anchors import anchor_grid
from minidl.detection.boxes import batched_nms, clip_boxes, decode_boxes, encode_boxes, nms, remove_small_boxes
from minidl.detection.losses import smooth_l1_loss
from minidl.detection.masks import mask_targets, paste_masks
from minidl.detection.roi_align import boxes_to_rois, roi_align
from minidl.detection.sampling import match_to_ground_truth, sample_balanced
from minidl.tensor import Tensor, no_grad

from .blocks import conv_bn_relu


@dataclass
class MaskRCNNConfig:
    """Every size and threshold of the model (defaults: 64x64 synthetic shapes, 3 classes)."""

    num_classes: int = 3                       # foreground classes, labelled 1..K (0 = background)
    channels: tuple = (16, 32, 64)             # backbone widths at strides 1, 2, 4
    anchor_sizes: tuple = (12.0, 20.0, 32.0)   # 3 anchors per cell, square (the shapes are)
    anchor_ratios: tuple = (1.0,)
    rpn_iou_thresholds: tuple = (0.3, 0.7)     # (background below, object at or above)
    rpn_batch_per_image: int = 128
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n: int = 300
    rpn_post_nms_top_n: int = 50
    rpn_nms_threshold: float = 0.7
    roi_iou_threshold: float = 0.5
    roi_batch_per_image: int = 64
    roi_positive_fraction: float = 0.25
    box_roi_size: int = 7
    box_hidden: int = 128
    box_weights: tuple = (10.0, 10.0, 5.0, 5.0)
    mask_roi_size: int = 14                    # the mask head outputs 2x this
    mask_channels: int = 32
    score_threshold: float = 0.05
    detection_nms_threshold: float = 0.5
    detections_per_image: int = 20
    min_box_size: float = 1.0
    smooth_l1_beta: float = 1.0 / 9

    @property
    def mask_size(self) -> int:
        return 2 * self.mask_roi_size


STRIDE = 4  # image pixels per feature cell


def image_size_of(features: Tensor) -> tuple:
    """(H, W) of the images behind stride-4 features (N, C, H/4, W/4)."""
    return features.shape[2] * STRIDE, features.shape[3] * STRIDE


def _conv_relu(in_channels: int, out_channels: int) -> list:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU()]


class Backbone(nn.Sequential):
    """Five 3x3 conv -> batch norm -> ReLU blocks, two of them stride 2:  (N, 3, H, W) -> (N, c3, H/4, W/4).

    channels (c1, c2, c3): c1 at full resolution, c2 at H/2, c3 at H/4. Images are shifted to
    [-0.5, 0.5] by the model before this. Batch norm matters here: without it the same network
    sits on a plateau for hundreds of steps before the heads start to separate the classes
    (measurements in benchmarks/README.md).
    """

    def __init__(self, channels=(16, 32, 64)):
        c1, c2, c3 = channels
        super().__init__(*conv_bn_relu(3, c1), *conv_bn_relu(c1, c2, stride=2), *conv_bn_relu(c2, c2),
                         *conv_bn_relu(c2, c3, stride=2), *conv_bn_relu(c3, c3))


class RPNHead(nn.Module):
    """A shared 3x3 conv, then per cell and anchor one objectness logit and 4 box deltas.

    forward: features (N, C, h, w) -> (objectness (N, h*w*A), deltas (N, h*w*A, 4)), flattened in
    the anchor order of ``anchor_grid``: index (y * w + x) * A + a.
    """

    def __init__(self, channels: int, num_anchors: int):
        super().__init__()
        self.num_anchors = num_anchors
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * num_anchors, 1)
        for layer in (self.objectness, self.deltas):  # small start: near-uniform scores, anchors as they are
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features):
        hidden = F.relu(self.conv(features))
        n, _, h, w = hidden.shape
        a = self.num_anchors
        objectness = self.objectness(hidden).permute(0, 2, 3, 1).reshape(n, h * w * a)
        deltas = self.deltas(hidden).reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, h * w * a, 4)
        return objectness, deltas


class BoxHead(nn.Module):
    """Two fully connected layers on the RoI features, then class logits and class-specific deltas.

    forward: (R, C, S, S) -> (logits (R, K+1), deltas (R, K+1, 4)).
    """

    def __init__(self, channels: int, roi_size: int, hidden: int, num_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(channels * roi_size * roi_size, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.classes = nn.Linear(hidden, num_classes + 1)
        self.deltas = nn.Linear(hidden, 4 * (num_classes + 1))
        nn.init.normal_(self.classes.weight, std=0.01)
        nn.init.normal_(self.deltas.weight, std=0.001)
        for layer in (self.classes, self.deltas):
            nn.init.zeros_(layer.bias)

    def forward(self, roi_features):
        hidden = F.relu(self.fc2(F.relu(self.fc1(roi_features.flatten(1)))))
        return self.classes(hidden), self.deltas(hidden).reshape(len(roi_features), -1, 4)


class MaskHead(nn.Module):
    """Two 3x3 convs, a 2x2 stride-2 transposed conv, and a 1x1 conv to one mask logit per class.

    forward: (P, C, S, S) -> (P, K, 2S, 2S).
    """

    def __init__(self, in_channels: int, channels: int, num_classes: int):
        super().__init__()
        self.convs = nn.Sequential(*_conv_relu(in_channels, channels), *_conv_relu(channels, channels))
        self.upsample = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        self.logits = nn.Conv2d(channels, num_classes, 1)

    def forward(self, roi_features):
        return self.logits(F.relu(self.upsample(self.convs(roi_features))))


class MaskRCNN(nn.Module):
    """Mask R-CNN for small images, in PyTorch's calling convention (see the module docstring).

    ``model(images, targets)`` in train mode -> dict of the five losses (scalar Tensors):
    rpn_objectness, rpn_box, roi_class, roi_box, mask.
    ``model(images)`` in eval mode -> per image a dict of NumPy arrays: boxes (D, 4), labels (D,),
    scores (D,), masks (D, H, W) bool, mask_probabilities (D, H, W).
    images: (N, 3, H, W) in [0, 1], H and W multiples of 4; targets: per image a dict with
    boxes (G, 4), labels (G,) in 1..K and masks (G, H, W) bool.
    ``generator`` draws the training samples of anchors and proposals.
    """

    def __init__(self, config: MaskRCNNConfig | None = None, generator: np.random.Generator | None = None):
        super().__init__()
        self.config = config = config or MaskRCNNConfig()
        self.generator = generator if generator is not None else np.random.default_rng(0)
        channels = config.channels[-1]
        num_anchors = len(config.anchor_sizes) * len(config.anchor_ratios)
        self.backbone = Backbone(config.channels)
        self.rpn = RPNHead(channels, num_anchors)
        self.box_head = BoxHead(channels, config.box_roi_size, config.box_hidden, config.num_classes)
        self.mask_head = MaskHead(channels, config.mask_channels, config.num_classes)

    # ------------------------------------------------------------------ shared pieces
    def features(self, images) -> Tensor:
        """Backbone features (N, C, H/4, W/4) of images in [0, 1]."""
        images = images if isinstance(images, Tensor) else Tensor(images)
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] % STRIDE or images.shape[3] % STRIDE:
            raise ValueError(f"MaskRCNN: images must be (N, 3, H, W) with H and W multiples of {STRIDE}, "
                             f"got {images.shape}")
        return self.backbone(images - 0.5)

    def anchors(self, feature_size) -> np.ndarray:
        """The (h * w * A, 4) anchors of an (h, w) feature map, in the RPN head's output order."""
        return anchor_grid(feature_size, STRIDE, self.config.anchor_sizes, self.config.anchor_ratios)

    def proposals(self, objectness: np.ndarray, deltas: np.ndarray, anchors: np.ndarray, image_size) -> list:
        """RPN outputs (N, A_total), (N, A_total, 4) -> per image (P, 4) proposals: the best
        ``rpn_pre_nms_top_n`` anchors, decoded, clipped to the image, small ones dropped, NMS,
        the best ``rpn_post_nms_top_n`` kept."""
        config = self.config
        result = []
        for scores, image_deltas in zip(objectness, deltas):
            top = np.argsort(-scores, kind="stable")[:config.rpn_pre_nms_top_n]
            boxes = clip_boxes(decode_boxes(image_deltas[top], anchors[top]), image_size)
            scores = scores[top]
            keep = remove_small_boxes(boxes, config.min_box_size)
            boxes, scores = boxes[keep], scores[keep]
            keep = nms(boxes, scores, config.rpn_nms_threshold)[:config.rpn_post_nms_top_n]
            result.append(boxes[keep])
        return result

    def propose(self, features: Tensor) -> tuple:
        """Run the RPN: (objectness (N, A_total), deltas (N, A_total, 4), anchors (A_total, 4),
        per-image proposals [(P_i, 4)])."""
        objectness, deltas = self.rpn(features)
        anchors = self.anchors(features.shape[2:])
        proposals = self.proposals(objectness.data, deltas.data, anchors, image_size_of(features))
        return objectness, deltas, anchors, proposals

    def roi_features(self, features: Tensor, boxes: list, size: int) -> Tensor:
        """roi_align of per-image boxes on the stride-4 map:  -> (sum of boxes, C, size, size)."""
        return roi_align(features, boxes_to_rois(boxes), size, spatial_scale=1.0 / STRIDE, sampling_ratio=2,
                         aligned=True)

    # ------------------------------------------------------------------ forward
    def forward(self, images, targets=None):
        features = self.features(images)
        objectness, deltas, anchors, proposals = self.propose(features)
        if not self.training:
            return self.detect(features, proposals)
        if targets is None or len(targets) != features.shape[0]:
            raise ValueError("MaskRCNN: training needs one target dict (boxes, labels, masks) per image")
        losses = self.rpn_losses(objectness, deltas, anchors, targets)
        losses.update(self.roi_losses(features, proposals, targets))
        return losses

    # ------------------------------------------------------------------ training
    def rpn_losses(self, objectness: Tensor, deltas: Tensor, anchors: np.ndarray, targets) -> dict:
        """Objectness: binary cross-entropy over the sampled anchors (mean); box: smooth L1 of the
        positives' deltas against encode(object, anchor), summed and divided by the sample count."""
        config = self.config
        low, high = config.rpn_iou_thresholds
        images, anchor_ids, labels, box_targets = [], [], [], []
        for i, target in enumerate(targets):
            gt_boxes = np.asarray(target["boxes"], dtype=np.float32).reshape(-1, 4)
            matched = match_to_ground_truth(anchors, gt_boxes, high, low, allow_low_quality_matches=True)
            positive, negative = sample_balanced(matched, config.rpn_batch_per_image, config.rpn_positive_fraction,
                                                 self.generator)
            chosen = np.concatenate([positive, negative])
            images.append(np.full(len(chosen), i))
            anchor_ids.append(chosen)
            labels.append(np.r_[np.ones(len(positive)), np.zeros(len(negative))])
            box_targets.append(encode_boxes(gt_boxes[matched[positive]], anchors[positive]))
        images, anchor_ids = np.concatenate(images), np.concatenate(anchor_ids)
        labels = np.concatenate(labels).astype(objectness.dtype)
        positive = labels == 1
        objectness_loss = F.binary_cross_entropy_with_logits(objectness[images, anchor_ids], labels)
        predicted = deltas[images[positive], anchor_ids[positive]]
        box_loss = smooth_l1_loss(predicted, np.concatenate(box_targets), config.smooth_l1_beta) / max(len(labels), 1)
        return {"rpn_objectness": objectness_loss, "rpn_box": box_loss}

    def sample_proposals(self, proposals: list, targets) -> tuple:
        """Append the ground-truth boxes to each image's proposals, match (IoU >= 0.5), sample.

        Returns per image: sampled boxes (R_i, 4), class labels (R_i,) (0 = background, positives
        first), matched object indices of the positives (P_i,).
        """
        config = self.config
        boxes, labels, matches = [], [], []
        for image_proposals, target in zip(proposals, targets):
            gt_boxes = np.asarray(target["boxes"], dtype=np.float32).reshape(-1, 4)
            candidates = np.concatenate([image_proposals, gt_boxes])
            matched = match_to_ground_truth(candidates, gt_boxes, config.roi_iou_threshold, config.roi_iou_threshold)
            positive, negative = sample_balanced(matched, config.roi_batch_per_image, config.roi_positive_fraction,
                                                 self.generator)
            boxes.append(candidates[np.concatenate([positive, negative])])
            labels.append(np.r_[np.asarray(target["labels"])[matched[positive]], np.zeros(len(negative))].astype(np.int64))
            matches.append(matched[positive])
        return boxes, labels, matches

    def roi_losses(self, features: Tensor, proposals: list, targets) -> dict:
        """roi_class: cross-entropy over the sampled RoIs; roi_box: smooth L1 of the true class's
        deltas of the positives, summed / number of RoIs; mask: mean per-pixel binary cross-entropy
        of the true class's mask logits of the positives against their ``mask_targets``."""
        config = self.config
        boxes, labels, matches = self.sample_proposals(proposals, targets)
        class_logits, box_deltas = self.box_head(self.roi_features(features, boxes, config.box_roi_size))
        all_labels = np.concatenate(labels)
        class_loss = F.cross_entropy(class_logits, all_labels)

        positive_boxes = [b[:len(m)] for b, m in zip(boxes, matches)]  # positives come first in each image
        starts = np.cumsum([0] + [len(b) for b in boxes[:-1]])
        positive_rows = np.concatenate([start + np.arange(len(m)) for start, m in zip(starts, matches)]).astype(np.int64)
        positive_labels = all_labels[positive_rows]
        gt_boxes = np.concatenate([np.asarray(t["boxes"], dtype=np.float32).reshape(-1, 4)[m]
                                   for t, m in zip(targets, matches)])
        references = np.concatenate(positive_boxes)
        box_targets = encode_boxes(gt_boxes, references, config.box_weights)
        predicted = box_deltas[positive_rows, positive_labels]
        box_loss = smooth_l1_loss(predicted, box_targets, config.smooth_l1_beta) / max(len(all_labels), 1)

        if len(positive_rows) == 0:  # no object in the batch: nothing for the mask head to learn
            return {"roi_class": class_loss, "roi_box": box_loss, "mask": class_loss * 0}
        mask_logits = self.mask_head(self.roi_features(features, positive_boxes, config.mask_roi_size))
        mask_logits = mask_logits[np.arange(len(positive_rows)), positive_labels - 1]
        targets_on_grid = np.concatenate([mask_targets(t["masks"], b, m, config.mask_size)
                                          for t, b, m in zip(targets, positive_boxes, matches)])
        mask_loss = F.binary_cross_entropy_with_logits(mask_logits, targets_on_grid.astype(mask_logits.dtype))
        return {"roi_class": class_loss, "roi_box": box_loss, "mask": mask_loss}

    # ------------------------------------------------------------------ inference
    def detect(self, features: Tensor, proposals: list) -> list:
        """Final detections per image (see the class docstring), without a graph."""
        config = self.config
        image_size = image_size_of(features)
        with no_grad():
            class_logits, box_deltas = self.box_head(self.roi_features(features, proposals, config.box_roi_size))
        probabilities = F.softmax(class_logits, 1).data
        starts = np.cumsum([0] + [len(p) for p in proposals])
        detections = []
        for i, image_proposals in enumerate(proposals):
            rows = slice(starts[i], starts[i + 1])
            boxes = clip_boxes(decode_boxes(box_deltas.data[rows, 1:], image_proposals, config.box_weights),
                               image_size)  # (P, K, 4)
            scores = probabilities[rows, 1:]
            labels = np.broadcast_to(np.arange(1, config.num_classes + 1), scores.shape)
            boxes, scores, labels = boxes.reshape(-1, 4), scores.ravel(), labels.ravel()
            keep = np.flatnonzero(scores > config.score_threshold)
            keep = keep[remove_small_boxes(boxes[keep], config.min_box_size)]
            keep = keep[batched_nms(boxes[keep], scores[keep], labels[keep], config.detection_nms_threshold)]
            keep = keep[:config.detections_per_image]
            detections.append({"boxes": boxes[keep], "labels": labels[keep].astype(np.int64), "scores": scores[keep]})
        masks = self.predict_masks(features, [d["boxes"] for d in detections], [d["labels"] for d in detections])
        for detection, probability in zip(detections, masks):
            detection["mask_probabilities"] = probability
            detection["masks"] = probability >= 0.5
        return detections

    def predict_masks(self, features: Tensor, boxes: list, labels: list) -> list:
        """Mask probabilities pasted into the image: per image (D, H, W), for the given boxes and classes."""
        image_size = image_size_of(features)
        if sum(len(b) for b in boxes) == 0:
            return [np.zeros((0, *image_size), dtype=features.dtype) for _ in boxes]
        with no_grad():
            logits = self.mask_head(self.roi_features(features, boxes, self.config.mask_roi_size)).data
        rows = np.arange(len(logits))
        probabilities = 1 / (1 + np.exp(-logits[rows, np.concatenate(labels).astype(np.int64) - 1]))
        starts = np.cumsum([0] + [len(b) for b in boxes])
        return [paste_masks(probabilities[starts[i]:starts[i + 1]], b, image_size) for i, b in enumerate(boxes)]
