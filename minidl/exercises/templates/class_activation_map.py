"""Exercise 12: class activation maps (Zhou et al., 2016).

For a network ending in feature maps A (N, K, h, w) -> global average pool -> linear layer with
weight (num_classes, K), the score of class c is

    y_c = sum_k weight[c, k] * mean_ij A[k, i, j] + b_c = mean_ij CAM_c[i, j] + b_c,
    CAM_c[i, j] = sum_k weight[c, k] * A[k, i, j]

so the map's average is exactly the class score (minus the bias): CAM_c[i, j] is how much location
(i, j) adds to class c. Library: ``minidl/explain/cam.py`` (which also upsamples it to the image).
Check:  python -m minidl.exercises check class_activation_map
"""

import numpy as np


def class_activation_map(features, weight, target):
    """features: (N, K, h, w), weight: (num_classes, K), target: (N,) ints
    -> (N, h, w): the CAM of class target[n] for image n."""
    raise NotImplementedError
