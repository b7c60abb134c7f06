"""Evaluation of explanations: rank correlation, blur, deletion/insertion curves, model randomisation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl import Tensor
from minidl.explain import (deletion_curve, gaussian_blur, gradient_x_input, insertion_curve, model_randomization,
                            saliency, spearman)
from minidl.explain.evaluation import rank, weight_layers
from minidl.random import manual_seed
from models.classifier import CAMClassifier


# ----------------------------------------------------------------------------- Spearman
@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 40), seed=st.integers(0, 2 ** 16))
def test_spearman_matches_the_closed_form_without_ties(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(n) * 1.5 - 3, rng.normal(size=n)
    d = rank(a) - rank(b)
    assert np.isclose(spearman(a, b), 1 - 6 * np.sum(d ** 2) / (n * (n ** 2 - 1)), rtol=0, atol=1e-12)
    assert np.isclose(spearman(a, np.exp(a)), 1.0) and np.isclose(spearman(a, -a ** 3), -1.0)


def test_ranks_share_the_mean_rank_on_ties():
    np.testing.assert_array_equal(rank(np.array([3.0, 1.0, 2.0, 2.0, 3.0])), [4.5, 1, 2.5, 2.5, 4.5])
    assert spearman(np.ones(5), np.arange(5.0)) == 0.0


# ----------------------------------------------------------------------------- blur
def test_gaussian_blur_keeps_constants_and_the_mean_of_a_periodic_free_image():
    x = np.full((2, 3, 9, 7), 0.25)
    np.testing.assert_allclose(gaussian_blur(x, 2.0), x, rtol=1e-12)
    impulse = np.zeros((1, 1, 21, 21))
    impulse[0, 0, 10, 10] = 1.0
    blurred = gaussian_blur(impulse, 1.5)[0, 0]
    np.testing.assert_allclose(blurred.sum(), 1.0, rtol=1e-12)  # far from the border nothing leaks
    np.testing.assert_allclose(blurred, blurred.T, rtol=1e-12)
    np.testing.assert_allclose(blurred, blurred[::-1, ::-1], rtol=1e-12)
    assert blurred.argmax() == 10 * 21 + 10


# ----------------------------------------------------------------------------- deletion and insertion
def linear_two_class_model(weight: np.ndarray):
    """logits = [sum(w * x), 0]: p(class 0) = sigmoid(sum(w * x)), every pixel adds w_p x_p on its own."""

    def model(x):
        score = (x * Tensor(weight)).sum(dim=(1, 2, 3)).reshape(-1, 1)
        return minidl.functional.cat([score, score * 0.0], dim=1)

    return model


def test_an_oracle_map_beats_every_random_map_at_every_step():
    """For this model the oracle ordering removes (inserts) the largest contributions first, so its
    probability is the lowest (highest) possible after every step, hence its AUC too."""
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.0, 1.0, (1, 2, 8, 8)) * (rng.random((1, 2, 8, 8)) < 0.3)  # few pixels matter
    model = linear_two_class_model(weight / 4)
    x = rng.uniform(0.2, 1.0, (3, 2, 8, 8))
    deletion_oracle = (weight * x).sum(axis=1)
    insertion_oracle = (weight * (x - gaussian_blur(x, 4.0))).sum(axis=1)
    deleted = deletion_curve(model, x, deletion_oracle, target=0, steps=16)
    inserted = insertion_curve(model, x, insertion_oracle, target=0, steps=16)
    assert deleted.probabilities.shape == (3, 17) and deleted.fractions[0] == 0 and deleted.fractions[-1] == 1
    for seed in range(20):
        random_map = np.random.default_rng(seed + 1).random((3, 8, 8))
        random_deleted = deletion_curve(model, x, random_map, target=0, steps=16)
        random_inserted = insertion_curve(model, x, random_map, target=0, steps=16)
        assert np.all(deleted.probabilities <= random_deleted.probabilities + 1e-12)
        assert np.all(inserted.probabilities >= random_inserted.probabilities - 1e-12)
        assert np.all(deleted.auc < random_deleted.auc) and np.all(inserted.auc > random_inserted.auc)
    # both curves start and end where they must: the full image and the baseline / the blurred copy
    np.testing.assert_allclose(deleted.probabilities[:, -1], 0.5)
    np.testing.assert_allclose(inserted.probabilities[:, -1], deleted.probabilities[:, 0])


# ----------------------------------------------------------------------------- model randomisation
def test_randomising_every_layer_decorrelates_saliency_but_not_gradient_times_input():
    """Adebayo et al.'s finding, reproduced: after all layers are re-initialised the saliency map of
    a model no longer resembles the original one, whereas gradient x input keeps the input's
    imprint. The model comes back unchanged."""
    manual_seed(0)
    model = CAMClassifier(1, 3, widths=(6, 8, 8)).eval()
    x = np.random.default_rng(0).uniform(0, 1, (6, 1, 12, 12)).astype(np.float32)
    x[:, :, 3:9, 3:9] += 2.0  # a bright object: what gradient x input keeps showing
    before = model.state_dict()
    result = model_randomization(model, lambda m, images, t: saliency(m, images, t), x, seed=1)
    assert result.layers[0] == "original" and result.layers[1:] == [name for name, _ in weight_layers(model)][::-1]
    assert result.correlations.shape == (len(result.layers), 6) and result.maps.shape == (len(result.layers), 6, 12, 12)
    np.testing.assert_array_equal(result.correlations[0], 1.0)
    assert abs(result.correlations[-1].mean()) < 0.3
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)

    times_input = model_randomization(model, lambda m, images, t: gradient_x_input(m, images, t).sum(axis=1),
                                      x, seed=1)
    assert times_input.correlations[-1].mean() > result.correlations[-1].mean() + 0.2
