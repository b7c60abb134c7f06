"""Whole models against their PyTorch twins (benchmarks/torch_twins.py): the same loss and the same
gradient for every parameter after one training-mode step in float64, and the README's lines that
move a trained minidl model into PyTorch."""

import re
from pathlib import Path

import numpy as np
import pytest

import minidl
from models import CAMClassifier, build_segmenter

torch = pytest.importorskip(
    "torch", reason="optional torch extra not installed: parity tests need `pip install -e .[torch]`")
from benchmarks.torch_twins import build_twin, gradient_differences, load_minidl_weights  # noqa: E402

CASES = {  # name: (constructor arguments, batch shape, classes)
    "unet": (dict(base_channels=4), (3, 3, 32, 32), 2),
    "segnet": (dict(base_channels=4, num_classes=3), (3, 3, 32, 32), 3),
    "fcn8s": (dict(base_channels=4), (3, 3, 32, 32), 2),
    "fcn16s": (dict(base_channels=2, in_channels=1), (2, 1, 64, 32), 2),
    "cam_classifier": (dict(widths=(4, 8, 8)), (5, 1, 28, 28), 10),
    # the sizes of examples/segment_pets.py: batch 16 splits into uneven groups of images per worker
    "unet, example sizes": (dict(base_channels=16), (16, 3, 64, 64), 2),
}


def build(name: str, config: dict):
    if name == "cam_classifier":
        return CAMClassifier(**config)
    return build_segmenter(name, **config)


@pytest.mark.parametrize("case", CASES)
def test_model_has_the_loss_and_gradients_of_its_torch_twin(case):
    name = case.split(",")[0]
    config, shape, classes = CASES[case]
    minidl.manual_seed(0)
    model = build(name, config).double()
    twin = load_minidl_weights(build_twin(name, **config), model)
    rng = np.random.default_rng(1)
    images = rng.random(shape)
    targets = rng.integers(0, classes, shape[:1] if name == "cam_classifier" else shape[:1] + shape[2:])
    loss_difference, gradient_difference, where = gradient_differences(model, twin, images, targets)
    assert loss_difference < 1e-12
    assert gradient_difference < 1e-9, f"{where}: gradients differ by {gradient_difference:.1e} of the largest"
    # the batch-norm running statistics took the same step in both
    state = twin.state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(value, state[key].numpy(), rtol=1e-12, atol=1e-14, err_msg=key)


def test_a_twin_refuses_a_different_architecture():
    twin = build_twin("unet", base_channels=8)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_minidl_weights(twin, build_segmenter("unet", base_channels=4))
    with pytest.raises(ValueError, match="no PyTorch twin"):
        build_twin("mask_rcnn")


def test_readme_moves_a_trained_model_into_pytorch():
    """Run the README's snippet on a (briefly trained) UNet; the twin predicts what minidl predicts."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "load_state_dict" in b]
    assert len(blocks) == 1, "the README should show one snippet that loads minidl weights into PyTorch"
    minidl.manual_seed(0)
    model = build_segmenter("unet", base_channels=16)
    optimizer = minidl.optim.Adam(model.parameters(), lr=1e-2)
    images = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    for _ in range(2):  # move the weights and the batch-norm statistics away from their initial values
        optimizer.zero_grad()
        minidl.functional.cross_entropy(model(minidl.Tensor(images)), (images[:, 0] > 0.5).astype(np.int64)).backward()
        optimizer.step()
    namespace = {"model": model}
    exec(blocks[0], namespace)
    twin = namespace["twin"]
    model.eval()
    twin.eval()
    with minidl.no_grad(), torch.no_grad():
        expected = model(minidl.Tensor(images)).data
        actual = twin(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
