"""Figures saved as PNG files (matplotlib, Agg backend: no screen needed)."""

from .curves import plot_training_curves
