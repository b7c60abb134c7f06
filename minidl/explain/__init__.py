"""Explanations of an image classifier's decision: which pixels made it say "sneaker" or "cat"?

Every method maps images x (N, C, H, W) and a target class per image (None = the predicted one)
to plain NumPy maps; none of them changes the model.

    cam.py                    class activation map: CAM_c = sum_k w_ck A_k (conv -> GAP -> linear nets)
    gradcam.py                Grad-CAM, Grad-CAM++: feature maps weighted by the logit's gradient, any layer
    saliency.py               saliency |d y / d x|, the course's |d CE / d x|, gradient x input, SmoothGrad
    integrated_gradients.py   Integrated Gradients with its completeness error
    occlusion.py              the logit drop when a patch is hidden
    evaluation.py             pointing game against an object mask; deletion / insertion curves and AUC;
                              model-randomisation sanity check
    maps.py                   channel reduction, bilinear upsampling, [0, 1] normalisation
    gradients.py              the shared primitive: d logit_target / d input (or / d feature maps)

Call ``model.eval()`` first: in training mode BatchNorm mixes the images of a batch (and dropout
is random), so one image's explanation would depend on the others.
"""

from .cam import class_activation_map
from .evaluation import (PerturbationCurve, PointingGame, RandomizationResult, deletion_curve, gaussian_blur,
                         insertion_curve, model_randomization, perturbation_curve, pointing_game, spearman)
from .gradcam import grad_cam, grad_cam_plus_plus
from .gradients import logit_gradient
from .integrated_gradients import IntegratedGradients, integrated_gradients
from .maps import normalize, reduce_channels, upsample
from .occlusion import occlusion
from .saliency import cross_entropy_saliency, gradient_x_input, saliency, smooth_grad

__all__ = [
    "class_activation_map", "grad_cam", "grad_cam_plus_plus", "saliency", "cross_entropy_saliency",
    "gradient_x_input", "smooth_grad", "integrated_gradients", "IntegratedGradients", "occlusion",
    "deletion_curve", "insertion_curve", "perturbation_curve", "PerturbationCurve", "pointing_game", "PointingGame",
    "gaussian_blur", "model_randomization", "RandomizationResult", "spearman", "logit_gradient", "reduce_channels",
    "upsample", "normalize",
]
