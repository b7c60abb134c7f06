"""Build the UNet step by step, as the DeepLearning.AI course does, and watch the shapes; then see
SegNet's pooling indices and FCN's crops at work. Prints only (no run folder), in a few seconds.

    python examples/walkthrough_unet.py                  # 32x32 RGB input, base 4 channels, depth 4
    python examples/walkthrough_unet.py --size 64 --base-channels 8

The steps are the pieces of ``models/unet.py``: conv2d_block -> encoder_block -> encoder ->
bottleneck -> decoder_block -> decoder -> unet. Each step prints the module's summary (layers,
output shapes, parameter counts) or the shapes it maps; the UNet then runs one forward and backward
pass (cross-entropy on a random 3-class mask) and prints the gradient of every convolution weight.
SegNet: the pooled maps, the indices (flat positions h * W + w in each plane) and the sparse maps
max-unpooling rebuilds from them. FCN-8s with the paper's geometry (conv1_1 padded by 100): the
offsets where each skip's scores are cropped, computed from the layers' coordinate maps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import minidl  # noqa: E402
from minidl import functional as F  # noqa: E402
from minidl.random import manual_seed  # noqa: E402
from models.fcn import FCN8s  # noqa: E402
from models.segnet import SegNet  # noqa: E402
from models.unet import UNet, Decoder, DecoderBlock, Encoder, EncoderBlock, bottleneck, conv2d_block  # noqa: E402

NUM_CLASSES = 3  # pet, background, outline: the course's trimap classes
FCN_MIN_SIZE = 32  # smaller inputs vanish in the paper's FCN (five pools and an unpadded 7x7 fc6)
BATCH = 2  # training-mode batch norm needs 2 values per channel, even at a 1x1 bottleneck


def parameter_count(module) -> int:
    return sum(p.size for p in module.parameters())


def heading(step: int, text: str) -> None:
    print(f"\n=== step {step}: {text}")


def shapes(*tensors) -> str:
    return ", ".join(str(tuple(t.shape)) for t in tensors)


def walk_unet(size: int, c: int, depth: int) -> None:
    """The course's order: each piece is built and run on its own before the next uses it."""
    x = minidl.Tensor(np.random.default_rng(0).standard_normal((BATCH, 3, size, size)).astype(np.float32))

    heading(1, f"conv2d_block(3, {c}): two rounds of 3x3 conv -> batch norm -> ReLU")
    conv2d_block(3, c).summary(x.shape)

    heading(2, f"encoder_block: skip = conv2d_block(x), down = dropout(max_pool_2x2(skip))")
    skip, down = EncoderBlock(3, c).eval()(x)
    print(f"x {shapes(x)} -> skip {shapes(skip)} (to the decoder), down {shapes(down)} (to the next block)")

    heading(3, f"encoder: {depth} encoder blocks, channels {c} -> {c * 2 ** (depth - 1)}, size halved each time")
    encoder = Encoder(3, c, depth).eval()
    deepest, skips = encoder(x)
    print(f"x {shapes(x)} -> {shapes(deepest)}; skips {shapes(*skips)}; {parameter_count(encoder):,} parameters")

    heading(4, "bottleneck: a conv2d_block that doubles the channels at the coarsest scale")
    middle = bottleneck(c * 2 ** (depth - 1)).eval()
    bottom = middle(deepest)
    print(f"{shapes(deepest)} -> {shapes(bottom)}; {parameter_count(middle):,} parameters")

    width = c * 2 ** (depth - 1)
    heading(5, f"decoder_block: 2x2 up-convolution, concatenate the skip, conv2d_block")
    block = DecoderBlock(2 * width, width, width).eval()
    print(f"x {shapes(bottom)} + skip {shapes(skips[-1])} -> up {shapes(block.up(bottom))} -> "
          f"cat with skip {(BATCH, 2 * width, *skips[-1].shape[2:])} -> {shapes(block(bottom, skips[-1]))}; "
          f"{parameter_count(block):,} parameters")

    heading(6, "decoder: the decoder blocks, consuming the skips deepest first")
    decoder = Decoder(c, depth).eval()
    print(f"{shapes(bottom)} + skips -> {shapes(decoder(bottom, skips))}; {parameter_count(decoder):,} parameters")

    heading(7, f"unet: encoder -> bottleneck -> decoder -> 1x1 conv to {NUM_CLASSES} class scores (logits)")
    model = UNet(3, NUM_CLASSES, base_channels=c, depth=depth)
    model.summary(x.shape)
    print("\none training step's forward and backward (cross-entropy on a random mask):")
    image = minidl.Tensor(x.data, requires_grad=True)
    mask = np.random.default_rng(1).integers(0, NUM_CLASSES, (BATCH, size, size))
    loss = F.cross_entropy(model(image), mask)
    loss.backward()
    print(f"loss {loss.item():.4f} (log {NUM_CLASSES} = {np.log(NUM_CLASSES):.4f} for a uniform guess); "
          f"d loss / d image: {image.grad.shape}")
    for name, param in model.named_parameters():
        if param.ndim == 4:  # the convolution weights; batch norm's scales and shifts are left out
            print(f"  {name:32s} weight {str(param.shape):16s} grad {str(param.grad.shape):16s} "
                  f"|grad| {np.linalg.norm(param.grad):.3g}")


def walk_segnet(size: int, c: int) -> None:
    heading(8, "SegNet: max-pool indices instead of skips")
    model = SegNet(3, NUM_CLASSES, base_channels=c, depth=3).eval()
    x = minidl.Tensor(np.random.default_rng(2).standard_normal((1, 3, size, size)).astype(np.float32))
    deepest, pooled = model.encode(x)
    for stage, (indices, before) in enumerate(pooled):
        plane = indices.data[0, 0]
        print(f"encoder stage {stage}: map {before} pooled to {plane.shape}; indices[0, 0, 0, :3] = "
              f"{plane[0, :3].tolist()} (h * {before[1]} + w in the {before[0]}x{before[1]} plane)")
    indices, before = pooled[-1]
    sparse = F.max_unpool2d(deepest, indices, 2, output_size=before)
    n, channels = indices.shape[:2]
    landed = np.take_along_axis(sparse.data.reshape(n, channels, -1), indices.data.reshape(n, channels, -1), axis=2)
    print(f"max_unpool2d: {shapes(deepest)} -> {shapes(sparse)}: each of the {deepest.size} pooled values is "
          f"back at its index ({np.array_equal(landed, deepest.data.reshape(n, channels, -1))}), "
          f"the other {sparse.size - deepest.size} positions are 0")
    print(f"SegNet output {shapes(model(x))}; {parameter_count(model):,} parameters")


def walk_fcn(size: int) -> None:
    heading(9, "FCN-8s with the paper's geometry: where the skips' scores are cropped")
    model = FCN8s(3, NUM_CLASSES, base_channels=2, fc_channels=8, geometry="paper").eval()
    x = minidl.Tensor(np.random.default_rng(3).standard_normal((1, 3, size, size)).astype(np.float32))
    scores, pooled = model.encode(x)
    print(f"input {shapes(x)}, padded by 100 at conv1_1; class scores at stride 32: {shapes(scores)}")
    for stage, score_pool, upsample, offset in zip(model.skip_stages, model.score_pools, model.upscore2,
                                                    model.crop_offsets):
        up, skip = upsample(scores), score_pool(pooled[stage])
        print(f"  x2 up-convolution {shapes(scores)} -> {shapes(up)}; pool{stage + 1} scores {shapes(skip)} "
              f"cropped at offset {offset} to {up.shape[2:]}")
        scores = up + F.crop(skip, offset, offset, *up.shape[2:])
    final = model.upscore(scores)
    print(f"  x8 up-convolution -> {shapes(final)}, cropped at offset {model.crop_offsets[-1]} to the input's "
          f"{size}x{size}; offsets from the coordinate maps: {model.crop_offsets} (the paper's 5, 9, 31)")
    same = np.array_equal(F.crop(final, *[model.crop_offsets[-1]] * 2, size, size).data, model(x).data)
    print(f"  the same as model(x): {same}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32, help="input height and width, a multiple of 2**depth, "
                        ">= 8 (default: %(default)s)")
    parser.add_argument("--base-channels", type=int, default=4, help="UNet/SegNet channels at the first level "
                        "(the course uses 64; default: %(default)s)")
    parser.add_argument("--depth", type=int, default=4, help="UNet encoder blocks (the course's 4; default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.depth < 1 or args.base_channels < 1:
        parser.error(f"--depth and --base-channels must be >= 1, got {args.depth} and {args.base_channels}")
    if args.size < 8 or args.size % 2**args.depth:
        parser.error(f"--size must be a multiple of 2**depth = {2**args.depth} and at least 8 (SegNet's three "
                     f"pools), got {args.size}")
    manual_seed(args.seed)
    walk_unet(args.size, args.base_channels, args.depth)
    walk_segnet(args.size, args.base_channels)
    walk_fcn(max(args.size, FCN_MIN_SIZE))


if __name__ == "__main__":
    main()
