"""examples/walkthrough_unet.py runs as a learner runs it and shows every step it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "walkthrough_unet.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_walkthrough_prints_each_step_and_is_deterministic():
    result = run("--size", "16", "--base-channels", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = ["conv2d_block", "encoder_block", "encoder", "bottleneck", "decoder_block", "decoder", "unet",
             "SegNet", "FCN-8s"]
    assert re.findall(r"=== step (\d+): ([\w-]+)", out) == [(str(i), name) for i, name in enumerate(steps, 1)]
    assert "x (2, 3, 16, 16) -> (2, 16, 1, 1); skips (2, 2, 16, 16), (2, 4, 8, 8), (2, 8, 4, 4), (2, 16, 2, 2)" in out
    assert "Output shape: (2, 3, 16, 16)" in out and "d loss / d image: (2, 3, 16, 16)" in out
    gradients = re.findall(r"weight (\(.*?\))\s+grad (\(.*?\))", out)
    assert len(gradients) == 4 * 2 + 2 + 4 * 3 + 1 and all(w == g for w, g in gradients)
    assert "pooled values is back at its index (True)" in out
    assert "input (1, 3, 32, 32), padded by 100" in out and "offsets from the coordinate maps: (5, 9, 31)" in out
    assert "the same as model(x): True" in out
    assert run("--size", "16", "--base-channels", "2").stdout == out


def test_walkthrough_help_and_bad_size():
    assert "--base-channels" in run("--help").stdout
    bad = run("--size", "24")
    assert bad.returncode == 2 and "--size must be a multiple of 2**depth = 16 and at least 8" in bad.stderr
