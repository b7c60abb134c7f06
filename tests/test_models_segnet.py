"""SegNet: shapes (odd sizes too), unpooling with the encoder's indices, the memory argument, gradients, errors."""

import numpy as np
import pytest

import minidl
from minidl import functional as F
from models import SegNet, UNet
from helpers import check_gradients
from tests.segmenter_checks import pet_photo, rand, train_on_one_image


@pytest.mark.parametrize("shape", [(2, 3, 32, 48), (1, 3, 37, 29)])
def test_output_has_the_input_size_even_for_odd_sizes(shape):
    model = SegNet(3, 4, base_channels=2, depth=3)
    assert model(rand(*shape)).shape == (shape[0], 4, *shape[2:])


def test_encoder_keeps_indices_and_decoder_puts_values_back_where_the_maxima_were():
    model = SegNet(3, 2, base_channels=2, depth=2)
    x = rand(1, 3, 16, 16)
    deepest, pooled = model.encode(x)
    assert deepest.shape == (1, 4, 4, 4)
    assert [(indices.shape, size) for indices, size in pooled] == [((1, 2, 8, 8), (16, 16)), ((1, 4, 4, 4), (8, 8))]
    indices, size = pooled[-1]
    unpooled = F.max_unpool2d(deepest, indices, 2, output_size=size).data
    # each 2x2 window of the unpooled map holds exactly one value, the window's maximum, at its argmax
    windows = unpooled.reshape(1, 4, 4, 2, 4, 2)
    assert ((windows != 0).sum(axis=(3, 5)) <= 1).all()
    np.testing.assert_array_equal(unpooled.reshape(1, 4, -1).max(axis=2), deepest.data.reshape(1, 4, -1).max(axis=2))


def test_memory_argument_indices_versus_unet_skips():
    """The paper's point: UNet keeps float32 maps for its skips, SegNet only 2-bit argmax positions."""
    x = rand(1, 3, 64, 64)
    unet, segnet = UNet(3, 2, base_channels=4, depth=4), SegNet(3, 2, base_channels=4, depth=4)
    _, skips = unet.encoder(x)
    _, pooled = segnet.encode(x)
    skip_bytes = sum(skip.data.nbytes for skip in skips)  # 4 bytes * C * H * W per level
    index_count = sum(indices.data.size for indices, _ in pooled)  # C * H/2 * W/2 per level
    assert skip_bytes == 4 * (4 * 64 * 64 + 8 * 32 * 32 + 16 * 16 * 16 + 32 * 8 * 8) == 122_880
    assert skip_bytes == 64 * (index_count * 2 // 8)  # 2 bits per index: 64x less
    assert skip_bytes == 2 * sum(indices.data.nbytes for indices, _ in pooled)  # int64 indices: still 2x less


def test_gradients_of_a_tiny_segnet_float64():
    minidl.manual_seed(0)
    model = SegNet(1, 2, base_channels=1, depth=2).double()
    # distinct values, so no max-pool window has a tie that central differences could flip
    x = np.random.default_rng(5).permutation(2 * 6 * 5).reshape(2, 1, 6, 5) / 10.0
    check_gradients(model, [x])


def test_overfits_one_real_image():
    x, mask = pet_photo(1, step=4)
    minidl.manual_seed(0)
    losses = train_on_one_image(SegNet(3, 2, base_channels=4, depth=2), x, mask, steps=40)
    assert losses[-1] < 0.2 * losses[0]


def test_errors():
    with pytest.raises(ValueError, match=r"SegNet: expected input of shape \(N, 3, H, W\)"):
        SegNet(3, 2, base_channels=1, depth=2)(rand(1, 4, 16, 16))
    with pytest.raises(ValueError, match="SegNet: input height/width 12 does not work.*2\\*\\*depth = 16.*near 12: 16"):
        SegNet(3, 2, base_channels=1, depth=4)(rand(1, 3, 12, 16))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        SegNet(num_classes=0)
    with pytest.raises(ValueError, match="depth must be in 1..5"):
        SegNet(depth=6)


@pytest.mark.parametrize("depth, dropped", [(5, [2, 3, 4]), (2, [0, 1])])
def test_dropout_follows_the_central_stages_in_training_only(depth, dropped):
    """Bayesian SegNet's placement: after the pools of the deepest min(3, depth) encoder stages and after
    their mirror decoder stages (deepest first), each unit zeroed or scaled by 1 / (1 - p); eval: none."""
    minidl.manual_seed(0)
    model, plain = SegNet(3, 2, base_channels=2, depth=depth, dropout=0.5), SegNet(3, 2, base_channels=2, depth=depth)
    seen = []
    model.dropout.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].data, output.data)))
    x = rand(2, 3, 32, 32)
    model(x)
    # stage i's pooled map is (2, 2 * m_i, 32 / 2^(i+1), ...), its decoder's output (2, 2 * m_(i-1), 32 / 2^i, ...)
    channels = [2 * m for m, _ in ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))]
    expected = ([(2, channels[i], 32 >> (i + 1), 32 >> (i + 1)) for i in dropped]
                + [(2, channels[max(i - 1, 0)], 32 >> i, 32 >> i) for i in reversed(dropped)])
    assert [inputs.shape for inputs, _ in seen] == expected
    for inputs, output in seen:
        assert np.all((output == 0) | np.isclose(output, 2 * inputs)) and (output == 0).mean() > 0.3
    plain.load_state_dict(model.state_dict())  # the weights and the batch norms' running statistics
    model.eval(), plain.eval()
    seen.clear()
    np.testing.assert_array_equal(model(x).data, plain(x).data)
    assert all(np.array_equal(inputs, output) for inputs, output in seen)
