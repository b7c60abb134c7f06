"""The README's paths exist, and scripts/make_docs_figures.py writes small docs figures."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def readme_paths() -> set[str]:
    """Every repository path the README names (text, code, links, images): words starting with a top-level folder."""
    text = (ROOT / "README.md").read_text()
    folders = "|".join(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
    return set(re.findall(rf"(?<![\w/.-])((?:{folders})/[\w./*-]*[\w*/])", text))


def test_every_path_in_the_readme_exists():
    paths = readme_paths()
    assert {"minidl/tensor.py", "examples/walkthrough_unet.py", "docs/pets_predictions.png"} <= paths
    missing = sorted(p for p in paths if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists()))
    assert not missing, f"README names paths that do not exist: {missing}"


def test_docs_figures_are_downsized_palette_pngs(tmp_path):
    runs, docs = tmp_path / "runs", tmp_path / "docs"
    (runs / "cam_fashion_mnist").mkdir(parents=True)
    rng = np.random.default_rng(0)
    picture = np.kron(rng.integers(0, 256, (30, 45, 3)), np.ones((40, 40, 1))).astype(np.uint8)  # 1200 x 1800
    for name in ("cam_grid.png", "cam_class_sneaker.png", "cam_class_sneaker_seed.png"):
        Image.fromarray(picture).save(runs / "cam_fashion_mnist" / name)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_docs_figures.py"), "--reuse", "--only", "cam",
                             "--runs", str(runs), "--docs", str(docs), "--max-width", "600"],
                            capture_output=True, text=True, check=True)
    assert "wrote" in result.stdout
    with Image.open(docs / "cam_grid.png") as figure:
        assert figure.size == (600, 400) and figure.mode == "P"
    with Image.open(docs / "cam_class_sneaker.png") as figure:  # its own width, below --max-width
        assert figure.size == (480, 320) and figure.mode == "P"
    missing = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_docs_figures.py"), "--reuse", "--only",
                              "pets", "--runs", str(runs), "--docs", str(docs)], capture_output=True, text=True)
    assert missing.returncode != 0 and "segment_pets/predictions.png does not exist" in missing.stderr


def test_every_docs_figure_is_made_by_the_script_and_shown_in_the_readme():
    spec = importlib.util.spec_from_file_location("make_docs_figures", ROOT / "scripts" / "make_docs_figures.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    made = {target for *_, figures in script.FIGURES.values() for _, target, *_ in figures}
    committed = {path.name for path in (ROOT / "docs").glob("*.png")}
    shown = {Path(p).name for p in readme_paths() if p.startswith("docs/")}
    assert committed == made == shown
