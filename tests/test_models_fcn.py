"""FCN-32s/16s/8s: the coordinate-map calculator (paper offsets), bilinear upsampling, staged init, shapes, errors."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minidl
import minidl.nn as nn
from minidl import Tensor
from minidl import functional as F
from models import FCN8s, FCN16s, FCN32s, CoordinateMap, crop_offset
from models.fcn import _output_side, bilinear_upsampling
from helpers import check_gradients
from tests.segmenter_checks import pet_photo, rand, train_on_one_image


def paper_vgg16_maps():
    """Image -> pool1..pool5 and -> score_fr maps of the paper's VGG16 (conv1_1 padded by 100, fc6 7x7 unpadded)."""
    conv = CoordinateMap.of_conv
    image_to, pools = CoordinateMap(), []
    for stage, convs in enumerate((2, 2, 3, 3, 3)):
        for i in range(convs):
            image_to = image_to.then(conv(3, 1, 100 if stage == 0 and i == 0 else 1))
        image_to = image_to.then(conv(2, 2, 0))
        pools.append(image_to)
    score_fr = image_to.then(conv(7, 1, 0)).then(conv(1)).then(conv(1))  # fc6, fc7, score_fr
    return pools, score_fr


def test_paper_offsets_from_the_layer_geometry():
    up = CoordinateMap.of_transposed_conv
    pools, score_fr = paper_vgg16_maps()
    image = CoordinateMap()
    # FCN-32s: upscore (64, stride 32) cropped to the image
    assert crop_offset(score_fr.then(up(64, 32)), image) == 19
    # FCN-16s: score_pool4 cropped to upscore2 (4, stride 2); upscore16 (32, stride 16) to the image
    upscore2 = score_fr.then(up(4, 2))
    assert (crop_offset(pools[3], upscore2), crop_offset(upscore2.then(up(32, 16)), image)) == (5, 27)
    # FCN-8s: then score_pool3 cropped to upscore_pool4; upscore8 (16, stride 8) to the image
    upscore_pool4 = upscore2.then(up(4, 2))
    assert (crop_offset(pools[3], upscore2), crop_offset(pools[2], upscore_pool4),
            crop_offset(upscore_pool4.then(up(16, 8)), image)) == (5, 9, 31)


@pytest.mark.parametrize("cls, offsets", [(FCN32s, (19,)), (FCN16s, (5, 27)), (FCN8s, (5, 9, 31))])
def test_models_compute_the_paper_offsets_from_their_own_layers(cls, offsets):
    assert cls(base_channels=1, fc_channels=2, geometry="paper").crop_offsets == offsets
    assert cls(base_channels=1, fc_channels=2).crop_offsets == (0,) * len(offsets)


@settings(max_examples=30, deadline=None)
@given(kernel=st.integers(1, 6), stride=st.integers(1, 4), padding=st.integers(0, 3), dilation=st.integers(1, 3))
@example(kernel=3, stride=2, padding=1, dilation=2)
def test_coordinate_maps_match_real_convolutions(kernel, stride, padding, dilation):
    """A conv's output pixel j reads input pixels centred on map^-1(j) (dilation spreads the taps); a
    transposed conv (of the same geometry, dilated too) spreads input pixel i over output pixels centred on
    map(i); the maps of a conv and of its transposed conv are inverses of each other; and the output sizes
    the FCNs plan their crops with are the layers' real output sizes."""
    conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation, bias=False)
    conv.weight.data[...] = 1
    conv_map = CoordinateMap.of_module(conv)
    transposed = nn.ConvTranspose2d(1, 1, (1, kernel), (1, stride), (0, padding), dilation=(1, dilation), bias=False)
    transposed.weight.data[...] = 1
    transposed_map = CoordinateMap.of_transposed_conv(kernel, stride, padding, dilation)
    assert CoordinateMap.of_module(nn.ConvTranspose2d(1, 1, kernel, stride, padding, dilation=dilation)) == transposed_map
    assert transposed_map == CoordinateMap.of_conv(kernel, stride, padding, dilation).inverse()
    assert conv_map.then(conv_map.inverse()) == CoordinateMap()
    size, rows = 24, dilation * (kernel - 1) + 1  # enough rows for one output row
    impulses = np.broadcast_to(np.eye(size).reshape(size, 1, 1, size), (size, 1, rows, size))
    reads = conv(Tensor(impulses.astype(np.float32))).data[:, 0, 0, :]  # batch item i: input column i lit
    for j in range(reads.shape[1]):
        window = np.flatnonzero(reads[:, j])  # input pixels that output j reads
        if window.size == kernel:  # a window wholly inside the input (none of its taps in the padding)
            assert conv_map.scale * Fraction(int(window.min() + window.max()), 2) + conv_map.shift == j
    spread = transposed(Tensor(impulses[:, :, :1].astype(np.float32))).data[:, 0, 0, :]
    for i in range(size):
        lit = np.flatnonzero(spread[i])  # output pixels input pixel i reaches (after the padding is cropped)
        if lit.size == kernel:  # every tap inside the output
            assert Fraction(int(lit.min() + lit.max()), 2) == transposed_map.scale * i + transposed_map.shift
    for module in (conv, nn.ConvTranspose2d(1, 1, kernel, stride, padding, min(stride, dilation) - 1, dilation=dilation)):
        if _output_side(module, size) > 0:
            assert module(Tensor(np.zeros((1, 1, size, size), np.float32))).shape[2] == _output_side(module, size)


def test_crop_offset_rejects_maps_that_cannot_be_cropped():
    with pytest.raises(ValueError, match="different scales"):
        crop_offset(CoordinateMap.of_conv(2, 2), CoordinateMap())
    with pytest.raises(ValueError, match="not a whole non-negative"):
        crop_offset(CoordinateMap.of_conv(3, 1, 0), CoordinateMap())  # x_out = x_in - 1: output starts inside


def test_aligned_bilinear_upsampling_is_bilinear_interpolation():
    """Kernel 2f, stride f, padding f/2, one tent kernel per class = bilinear interpolation (align_corners=False)
    everywhere but a border of f/2 pixels, where the transposed conv sees zeros beyond the edge."""
    x = rand(2, 3, 5, 6)
    for factor in (2, 8):
        up = bilinear_upsampling(3, factor, "aligned")(x).data
        expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False).data
        inner = slice(factor, -factor)
        np.testing.assert_allclose(up[..., inner, inner], expected[..., inner, inner], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [FCN32s, FCN16s, FCN8s])
@pytest.mark.parametrize("geometry, shape", [("aligned", (2, 3, 64, 32)), ("paper", (1, 3, 45, 38))])
def test_output_has_the_input_size(cls, geometry, shape):
    model = cls(3, 3, base_channels=1, fc_channels=2, geometry=geometry)
    assert model(rand(*shape)).shape == (shape[0], 3, *shape[2:])


def test_staged_initialisation_copies_the_coarser_net_and_starts_skips_at_zero():
    minidl.manual_seed(0)
    fcn32 = FCN32s(base_channels=2, fc_channels=4)
    fcn16 = FCN16s.from_fcn32s(fcn32)
    fcn8 = FCN8s.from_fcn16s(fcn16)
    state32, state16, state8 = fcn32.state_dict(), fcn16.state_dict(), fcn8.state_dict()
    shared = [name for name in state32 if not name.startswith("upscore")]
    assert shared and all(np.array_equal(state16[name], state32[name]) for name in shared)
    assert all(np.array_equal(state8[name], state16[name]) for name in state16 if not name.startswith("upscore."))
    assert not state16["score_pools.0.weight"].any() and not state8["score_pools.1.weight"].any()
    # with zero skip scores, FCN-16s = x16 upsample(x2 upsample(score_fr)): nothing else enters
    x = rand(1, 3, 64, 64)
    fcn16.eval()
    with minidl.no_grad():
        pooled = x
        for stage in fcn16.stages:
            pooled = stage(pooled)
        scores = fcn16.score_fr(fcn16.fc7(fcn16.fc6(pooled)))
        np.testing.assert_allclose(fcn16(x).data, fcn16.upscore(fcn16.upscore2[0](scores)).data, rtol=1e-5, atol=1e-6)


def test_gradients_of_the_skip_fusion_and_crops_float64():
    """decode() of FCN-8s in the paper geometry: x2 upsample, crop pool4's scores at 5, add, x2, crop
    pool3's scores at 9, add, x8, crop the image at 31. Maps as small as the crops allow (pool4 needs
    5 + 4 = 9 pixels, pool3 9 + 10 = 19) for a 40x40 image."""
    minidl.manual_seed(0)
    model = FCN8s(1, 2, base_channels=1, fc_channels=2, geometry="paper").double()
    for score in model.score_pools:  # non-zero skip scores, so the check covers the fusion
        score.weight.data[...] = np.random.default_rng(1).standard_normal(score.weight.shape)
    model.eval()
    with minidl.no_grad():
        scores, pooled = model.encode(Tensor(np.zeros((1, 1, 40, 40))))
    assert scores.shape[2:] == (1, 1) and pooled[3].shape[2:] == (14, 14) and pooled[2].shape[2:] == (29, 29)
    rng = np.random.default_rng(2)
    pool3 = Tensor(rng.standard_normal(pooled[2].shape[:2] + (19, 19)))  # fixed: the same code path as pool4
    inputs = [rng.standard_normal(scores.shape), rng.standard_normal((1, 1, 9, 9))]
    channels = pooled[3].shape[1]  # pool4 = one checked plane repeated over its channels, for speed
    check_gradients(lambda s, p4: model.decode(s, [None, None, pool3, F.cat([p4] * channels, dim=1)], (40, 40)),
                    inputs)


def test_fcn8s_learns_one_real_image():
    x, mask = pet_photo(2, step=2)  # 32x32
    minidl.manual_seed(0)
    losses = train_on_one_image(FCN8s(3, 2, base_channels=4, fc_channels=8, dropout=0.0), x, mask, steps=30)
    assert losses[-1] < 0.5 * losses[0]


def test_errors():
    with pytest.raises(ValueError, match="FCN8s: input height/width 70 does not work: .*multiples of the total "
                                         "stride 32.*near 70: 64, 96"):
        FCN8s(base_channels=1, fc_channels=2)(rand(1, 3, 64, 70))
    with pytest.raises(ValueError, match=r"FCN32s: expected input of shape \(N, 3, H, W\)"):
        FCN32s(base_channels=1, fc_channels=2)(rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        FCN16s(num_classes=1)
    with pytest.raises(ValueError, match="geometry must be one of"):
        FCN16s(geometry="same")
