"""Regenerate the README's pictures in docs/ from real runs of the examples (with their defaults).

    nice -n 19 python scripts/make_docs_figures.py                 # run every example (minutes each), then copy
    python scripts/make_docs_figures.py --reuse                    # only copy/downsize from existing run folders
    python scripts/make_docs_figures.py --only pets cam

Each figure comes from one example run into ``--runs/<folder>/`` (default ``runs/``; the folder names
are the examples' own, the three-class run's aside, so ``--reuse`` also takes runs you made with the
defaults); the example's PNG is downsized (to the width in ``FIGURES``) and reduced to the palette
size given there so that docs/ stays a few hundred kB, then written to ``docs/<figure>.png``. The run's
``metrics.json`` (or ``comparison.md``) stays in the run folder for the numbers quoted beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# name -> (example script, its run folder under --runs, arguments beyond the defaults,
#          [(a PNG the example writes into the run folder, the docs file, width in pixels, palette size), ...]);
# a palette of 64 colours keeps photos smooth under median cut; the saliency figures need 128 (their
# heat maps take most of a small palette and the photos beside them turn to posters)
FIGURES = {
    "pets": ("segment_pets.py", "segment_pets", [], [("predictions.png", "pets_predictions.png", 600, 64)]),
    "three_class": ("segment_pets.py", "segment_pets_three_class", ["--target", "three_class"],
                    [("predictions.png", "pets_three_class.png", 560, 64)]),
    "segmenters": ("compare_segmenters.py", "compare_segmenters", [],
                   [("predictions.png", "segmenters.png", 640, 64)]),
    "cam": ("cam_fashion_mnist.py", "cam_fashion_mnist", [],
            [("cam_grid.png", "cam_grid.png", 600, 64), ("cam_class_sneaker.png", "cam_class_sneaker.png", 480, 64),
             ("cam_class_sneaker_seed.png", "cam_class_sneaker_seed.png", 480, 64)]),
    "saliency": ("saliency_cats_dogs.py", "saliency_cats_dogs", [],  # tall figures of noisy maps: narrow
                 [("saliency.png", "saliency.png", 420, 128), ("saliency_course.png", "saliency_course.png", 420, 128)]),
    # the default 600 s budget stops a run early on a busy machine; the figure needs all 600 steps
    "mask_rcnn": ("mask_rcnn_shapes.py", "mask_rcnn_shapes", ["--time-budget", "36000"],
                  [("predictions.png", "mask_rcnn.png", 720, 64)]),
}


def run_example(script: str, out: Path, extra: list) -> float:
    """Run one example with its defaults (and ``extra``) into ``out`` (replacing a run already there);
    returns the wall time in seconds."""
    start = time.perf_counter()
    command = [sys.executable, str(ROOT / "examples" / script), "--out", str(out), "--overwrite", "--no-progress",
               *extra]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - start


def downsize(source: Path, target: Path, max_width: int, colours: int) -> int:
    """Copy a PNG at most ``max_width`` wide, as a palette PNG of ``colours`` (median cut); returns its size in bytes."""
    with Image.open(source) as image:
        image = image.convert("RGB")
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
        image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(target, format="PNG", optimize=True)
    return target.stat().st_size


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), default=list(FIGURES), help="figures to make")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs",
                        help="folder of the run folders, named as the examples name them (default: %(default)s)")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the figures go")
    parser.add_argument("--reuse", action="store_true", help="do not run the examples; copy from --runs")
    parser.add_argument("--max-width", type=int, default=None, help="a lower width limit than each figure's own")
    args = parser.parse_args(argv)
    if args.max_width is not None and args.max_width < 100:
        parser.error(f"--max-width must be at least 100 pixels, got {args.max_width}")
    args.docs.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        script, folder, extra, figures = FIGURES[name]
        out = args.runs / folder
        if not args.reuse:
            print(f"{name}: {run_example(script, out, extra):.0f} s", flush=True)
        for figure, target, width, colours in figures:
            source = out / figure
            if not source.exists():
                raise SystemExit(f"{source} does not exist: run without --reuse (or check the example's output names)")
            size = downsize(source, args.docs / target, min(width, args.max_width or width), colours)
            print(f"wrote {args.docs / target} ({size / 1000:.0f} kB) from {source}")


if __name__ == "__main__":
    main()
