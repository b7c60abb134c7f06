"""Figures saved as PNG files (matplotlib, Agg backend: no screen needed)."""

from .curves import plot_training_curves
from .detection import plot_detections, plot_loss_terms
from .explanations import plot_attribution_table, plot_cam_grid, plot_perturbation_curves, plot_randomization
from .segmentation import plot_segmentations
