"""Evaluation of explanations: rank correlation, blur, deletion/insertion curves, model randomisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl import Tensor
from minidl.explain import (deletion_curve, gaussian_blur, gradient_x_input, insertion_curve, model_randomization,
                            pointing_game, saliency, spearman)
from minidl.explain.evaluation import rank, weight_layers
from minidl.random import manual_seed
from models.classifier import CAMClassifier


# ----------------------------------------------------------------------------- pointing game
@st.composite
def masks_and_maps(draw):
    """Masks (N, H, W) with at least one object and one background pixel each, and positive maps."""
    n, height, width = draw(st.integers(1, 4)), draw(st.integers(2, 9)), draw(st.integers(2, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    masks = rng.random((n, height, width)) < draw(st.floats(0.1, 0.9))
    masks.reshape(n, -1)[:, 0], masks.reshape(n, -1)[:, -1] = True, False
    return masks, rng.uniform(0.1, 3.0, (n, height, width))


@settings(max_examples=30, deadline=None)
@given(drawn=masks_and_maps(), scale=st.floats(0.01, 100.0))
def test_pointing_game_scores_the_mask_1_a_uniform_map_its_area_and_a_map_outside_it_0(drawn, scale):
    masks, values = drawn
    area = masks.mean(axis=(1, 2))
    on_mask = pointing_game(scale * masks, masks)
    np.testing.assert_allclose(on_mask.energy, 1.0, rtol=1e-12)
    np.testing.assert_allclose(on_mask.hit, 1.0, rtol=1e-12)
    np.testing.assert_allclose(on_mask.uniform, area, rtol=1e-12)
    uniform = pointing_game(np.full(masks.shape, scale), masks)
    np.testing.assert_allclose(uniform.energy, area, rtol=1e-12)
    np.testing.assert_allclose(uniform.hit, area, rtol=1e-12)  # every pixel ties for the maximum
    outside = pointing_game(values * ~masks, masks)
    np.testing.assert_array_equal(outside.energy, 0.0)
    np.testing.assert_array_equal(outside.hit, 0.0)
    # negative values are evidence against the class: adding them anywhere changes nothing
    signed = pointing_game(values * masks - values * ~masks, masks)
    np.testing.assert_allclose(signed.energy, 1.0, rtol=1e-12)
    np.testing.assert_array_equal(signed.hit, 1.0)


@settings(max_examples=30, deadline=None)
@given(drawn=masks_and_maps())
def test_pointing_game_energy_is_the_mass_share_and_the_hit_follows_the_maximum(drawn):
    masks, values = drawn
    game = pointing_game(values, masks)
    for n in range(len(masks)):
        assert np.isclose(game.energy[n], values[n][masks[n]].sum() / values[n].sum(), rtol=1e-12)
        assert game.hit[n] == float(masks[n].flat[values[n].argmax()])  # continuous draws: no ties
    assert 0 < game.energy.min() and game.energy.max() < 1


def test_pointing_game_edge_cases_have_defined_scores():
    masks = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[1, 0], [0, 0]]])
    maps = np.array([[[0.0, 0.0], [0.0, 0.0]],  # points nowhere: energy undefined, hit = area share
                     [[1.0, 2.0], [3.0, 4.0]],  # empty mask: everything 0
                     [[-1.0, -3.0], [-2.0, -4.0]]])  # no positive mass; the least negative pixel is on the mask
    game = pointing_game(maps, masks)
    assert np.isnan(game.energy[0]) and game.hit[0] == 0.5 and game.uniform[0] == 0.5
    assert game.energy[1] == 0.0 and game.hit[1] == 0.0 and game.uniform[1] == 0.0
    assert np.isnan(game.energy[2]) and game.hit[2] == 1.0
    ties = pointing_game(np.array([[[2.0, 2.0], [2.0, 1.0]]]), np.array([[[True, False], [False, False]]]))
    np.testing.assert_allclose(ties.hit, [1 / 3])  # one of the three tied maxima lies on the mask
    summary = game.summary()
    assert summary["undefined"] == 2 and summary["images"] == 3 and summary["energy"] == 0.0
    assert np.isclose(summary["hit_rate"], 0.5) and np.isclose(summary["uniform"], 0.25)


def test_pointing_game_refuses_masks_that_are_not_binary_and_mismatched_shapes():
    maps = np.ones((1, 3, 3))
    with pytest.raises(ValueError, match="masks must be bool or 0/1"):
        pointing_game(maps, np.full((1, 3, 3), 2))  # e.g. raw trimap codes 1/2/3
    with pytest.raises(ValueError, match=r"maps and masks must both be \(N, H, W\)"):
        pointing_game(maps, np.ones((1, 3, 4), bool))
    with pytest.raises(ValueError, match="NaN"):
        pointing_game(np.full((1, 3, 3), np.nan), np.ones((1, 3, 3), bool))


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
