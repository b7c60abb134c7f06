"""UNet: shapes of every step, the paper's 572 -> 388 geometry, gradients, learning, errors."""

import numpy as np
import pytest

import minidl
from minidl import functional as F
from models import UNet
from models.unet import Decoder, DecoderBlock, Encoder, EncoderBlock, bottleneck, conv2d_block
from helpers import check_gradients
from tests.segmenter_checks import pet_photo, rand, train_on_one_image


def test_each_step_maps_the_documented_shapes():
    c = 2
    x = rand(2, 3, 32, 48)
    assert conv2d_block(3, c)(x).shape == (2, c, 32, 48)
    assert conv2d_block(3, c, padding="valid")(x).shape == (2, c, 28, 44)
    skip, down = EncoderBlock(3, c)(x)
    assert skip.shape == (2, c, 32, 48) and down.shape == (2, c, 16, 24)
    deepest, skips = Encoder(3, c, depth=3)(x)
    assert deepest.shape == (2, 4 * c, 4, 6)
    assert [s.shape for s in skips] == [(2, c, 32, 48), (2, 2 * c, 16, 24), (2, 4 * c, 8, 12)]
    bottom = bottleneck(4 * c)(deepest)
    assert bottom.shape == (2, 8 * c, 4, 6)
    assert DecoderBlock(8 * c, 4 * c, 4 * c)(bottom, skips[-1]).shape == (2, 4 * c, 8, 12)
    assert Decoder(c, depth=3)(bottom, skips).shape == (2, c, 32, 48)
    assert UNet(3, 5, base_channels=c, depth=3)(x).shape == (2, 5, 32, 48)


def test_paper_geometry_572_gives_388():
    assert UNet.paper().output_size(572) == 388
    # the same walk with a tiny-channel forward pass: crops are computed from the tensors' shapes
    model = UNet(1, 2, base_channels=1, depth=4, padding="valid", dropout=0.0)
    assert model.output_size(572) == 388
    assert model(rand(1, 1, 572, 572)).shape == (1, 2, 388, 388)


def test_valid_decoder_block_centre_crops_the_skip():
    block = DecoderBlock(2, 1, 1, padding="valid", dropout=0.0)
    skip = rand(1, 1, 9, 9, seed=1)
    up = block.up(rand(1, 2, 3, 3))
    assert up.shape == (1, 1, 6, 6)
    kept = F.center_crop(skip, (6, 6)).data
    np.testing.assert_array_equal(kept, skip.data[:, :, 2:8, 2:8])  # (9 - 6) / 2 = 1.5 rounds to 2
    assert block(rand(1, 2, 3, 3), skip).shape == (1, 1, 2, 2)


def test_gradients_of_a_valid_decoder_block_float64():
    minidl.manual_seed(0)
    block = DecoderBlock(2, 1, 2, padding="valid", dropout=0.0).double()
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 3))  # up-conv: 6x6
    skip = np.random.default_rng(2).standard_normal((1, 1, 7, 8))  # centre-cropped to 6x6
    check_gradients(lambda x, s: block(x, s), [x, skip])


def test_gradients_of_a_whole_tiny_unet_float64():
    minidl.manual_seed(0)
    model = UNet(1, 3, base_channels=1, depth=1, dropout=0.0).double()
    check_gradients(model, [np.random.default_rng(3).standard_normal((2, 1, 4, 6))])


def course_parameters(in_channels: int = 3, num_classes: int = 3, base: int = 64, depth: int = 4) -> int:
    """Closed form: a conv2d_block (c_in -> c) without batch norm has 9 c_in c + c + 9 c c + c parameters,
    an up-conv (2c -> c, 3x3) 9 (2c) c + c, the 1x1 classifier base * classes + classes."""
    def block(c_in, c):
        return 9 * c_in * c + c + 9 * c * c + c

    widths = [base * 2 ** i for i in range(depth)]
    encoder = sum(block(c_in, c) for c_in, c in zip([in_channels, *widths[:-1]], widths))
    decoder = sum(9 * 2 * c * c + c + block(2 * c, c) for c in widths)
    return encoder + block(widths[-1], 2 * widths[-1]) + decoder + base * num_classes + num_classes


def test_course_unet_is_the_course_network():
    model = UNet.course(generator=np.random.default_rng(0))
    parameters = sum(p.size for p in model.parameters())
    assert parameters == course_parameters() == 34_513_475  # the total of the course's model.summary()
    assert sum(p.size for p in UNet.course(1, 2).parameters()) == course_parameters(1, 2)
    assert not any(isinstance(m, minidl.nn.BatchNorm2d) for m in model.modules())
    ups = [m for m in model.modules() if isinstance(m, minidl.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in ups] == [
        (2 * c, c, (3, 3), (2, 2)) for c in (512, 256, 128, 64)]
    assert model.bottleneck[0].weight.shape == (1024, 512, 3, 3)
    assert model.output_size(128) == 128
    model.eval()
    with minidl.no_grad():
        assert model(rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_course_unet_uses_keras_initialisers():
    model = UNet.course(generator=np.random.default_rng(0))
    for module in model.modules():
        if isinstance(module, (minidl.nn.Conv2d, minidl.nn.ConvTranspose2d)):
            assert not module.bias.data.any()
    he_normal = model.bottleneck[0].weight.data  # 4.7 M draws of truncated N(0, s^2), variance 2 / fan_in
    fan_in = 512 * 9
    assert np.isclose(he_normal.std(), np.sqrt(2 / fan_in), rtol=0.01)
    assert np.abs(he_normal).max() <= 2 * np.sqrt(2 / fan_in) / 0.87962566103423978
    assert np.abs(he_normal).max() > 1.99 * np.sqrt(2 / fan_in) / 0.87962566103423978
    glorot = model.decoder.blocks[0].up.weight.data  # (1024, 512, 3, 3): b = sqrt(6 / (fan_in + fan_out))
    bound = np.sqrt(6 / (9 * 512 + 9 * 1024))
    assert np.abs(glorot).max() <= bound and np.isclose(glorot.std(), bound / np.sqrt(3), rtol=0.01)


def test_gradients_of_a_tiny_course_style_unet_float64():
    minidl.manual_seed(0)
    model = UNet(1, 3, base_channels=1, depth=2, dropout=0.0, batch_norm=False, up_kernel_size=3).double()
    check_gradients(model, [np.random.default_rng(4).standard_normal((2, 1, 4, 8))])


def test_conv_flops_counts_every_multiply_add():
    model = UNet(1, 2, base_channels=1, depth=1)
    # 4x4 input: conv 1->1 (x2) at 4x4, bottleneck 1->2, 2->2 at 2x2, up-conv 2->1 (k 2) from 2x2,
    # decoder conv 2->1, 1->1 at 4x4, classifier 1x1 1->2 at 4x4; 2 FLOPs per multiply-add
    expected = 2 * (9 * 16 + 9 * 16 + 9 * 2 * 4 + 9 * 4 * 4 + 4 * 2 * 4 + 9 * 2 * 16 + 9 * 16 + 2 * 16)
    assert model.conv_flops(4, 4) == expected


def test_overfits_one_real_image():
    x, mask = pet_photo(0, step=4)  # 16x16
    minidl.manual_seed(0)
    model = UNet(3, 2, base_channels=4, depth=2, dropout=0.0)
    losses = train_on_one_image(model, x, mask, steps=40)
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    assert (model(x).data.argmax(axis=1) == mask).mean() > 0.95


@pytest.mark.parametrize("size, nearest", [(65, "64, 80"), (40, "32, 48")])
def test_same_padding_rejects_sizes_that_are_not_multiples_of_2_to_the_depth(size, nearest):
    model = UNet(3, 2, base_channels=1, depth=4)
    with pytest.raises(ValueError, match=f"UNet: input height/width {size} .*multiples of 2\\*\\*depth = 16.*"
                                         f"near {size}: {nearest}"):
        model(rand(1, 3, 64, size))


def test_valid_padding_error_names_the_nearest_working_sizes():
    model = UNet.paper()
    with pytest.raises(ValueError, match="near 570: 556, 572"):
        model.output_size(570)


def test_errors_for_channels_classes_and_padding():
    with pytest.raises(ValueError, match=r"UNet: expected input of shape \(N, 3, H, W\).*got shape \(1, 1, 16, 16\)"):
        UNet(3, 2, base_channels=1, depth=2)(rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        UNet(3, 1)
    with pytest.raises(ValueError, match="padding must be one of"):
        UNet(padding="full")
