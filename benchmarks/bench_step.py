"""One whole training step of each example model, minidl against the identical PyTorch model.

    python benchmarks/bench_step.py                          # every model, about 2 minutes on 2 idle cores
    python benchmarks/bench_step.py --models unet --repeat 10 --rounds 4

A step is what a learner waits for: forward + cross-entropy, backward, one Adam update. For UNet
(base 16), SegNet and FCN-8s (base 16) on a batch of 16 RGB 64x64 images, and for the Fashion-MNIST
CAM classifier on a batch of 64 28x28 images, the script builds the minidl model and its PyTorch twin
(``benchmarks/torch_twins.py``: the same layers under the same names), copies minidl's weights into
the twin and checks, in float64, that both give the same loss and parameter gradients on the same
batch with dropout off, so the timings compare the same computation. It then times the steps in this one
process, with the same number of threads in both libraries, and prints per phase the median
milliseconds of each and the ratio minidl / torch (below 1: minidl is faster).

Interleaving. The libraries are timed in alternating blocks: ``--rounds`` times, each library runs
untimed for WARM_UP_SECONDS (so the other's thread pool has gone to sleep, see bench_kernels.py),
then ``--repeat`` timed steps; the library that goes first alternates from round to round. On a
machine shared with other jobs the absolute times move with the load, but both libraries see the
same load within a round, so the ratios are the honest measure. Under heavy load (many more runnable
processes than cores) PyTorch's OpenMP threads wait for each other at every parallel loop and its
2-thread times grow far more than minidl's: compare single-threaded there,
``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/bench_step.py``.

Memory, measured on one extra step of each library after the timing: the peak of memory allocated
through NumPy (``tracemalloc``, minidl only: torch's allocator does not report to it) and, for both,
the growth of the process's peak resident set during the step (Linux: freed memory is handed back
with ``malloc_trim`` and the peak reset through ``/proc/self/clear_refs`` first).

Mask R-CNN (``--models mask_rcnn``): the step of examples/mask_rcnn_shapes.py (batch 8 of 64x64
synthetic shapes, five losses summed, Adam). It has no PyTorch twin (its anchor matching and
proposal sampling are NumPy code and PyTorch has no RoIAlign without torchvision), so only minidl's
phases are printed.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark this checkout, and find benchmarks.torch_twins

import minidl  # noqa: E402
from minidl import functional as F  # noqa: E402
from minidl import optim  # noqa: E402
from minidl.kernels import workers  # noqa: E402

PHASES = ("forward + loss", "backward", "optimizer step", "total")
# Untimed steps of one library before timing it: longer than OpenBLAS's 0.1 s of spinning threads.
WARM_UP_SECONDS = 0.3
# The parity check (float64) fails above these (relative to the loss / to each parameter's largest gradient).
LOSS_TOLERANCE, GRADIENT_TOLERANCE = 1e-10, 1e-8
LEARNING_RATE = 1e-3

SEGMENTATION = dict(in_channels=3, num_classes=2, base_channels=16)
# name: (constructor arguments of the minidl model and its twin, input batch shape, number of classes)
MODELS = {
    "unet": (SEGMENTATION, (16, 3, 64, 64), 2),
    "segnet": (dict(SEGMENTATION, depth=3), (16, 3, 64, 64), 2),  # the depth of examples/common.py's recipe
    "fcn8s": (SEGMENTATION, (16, 3, 64, 64), 2),
    "cam_classifier": (dict(in_channels=1, num_classes=10), (64, 1, 28, 28), 10),
    "mask_rcnn": (None, (8, 3, 64, 64), None),
}


def build_minidl(name: str, config: dict):
    from models import CAMClassifier, MaskRCNN, build_segmenter

    if name == "mask_rcnn":
        return MaskRCNN()
    return CAMClassifier(**config) if name == "cam_classifier" else build_segmenter(name, **config)


def make_batch(name: str, shape: tuple, classes: int, rng: np.random.Generator) -> tuple:
    """(images, targets): random images in [0, 1] and random class labels (per pixel or per image);
    for Mask R-CNN the first images and targets of the example's synthetic shapes."""
    if name == "mask_rcnn":
        from minidl.detection.shapes import ShapesDataset

        images, samples = ShapesDataset(shape[0], seed=1).batch(range(shape[0]))
        return images, [s.target() for s in samples]
    images = rng.random(shape, dtype=np.float32)
    target_shape = (shape[0],) if name == "cam_classifier" else (shape[0],) + shape[2:]
    return images, rng.integers(0, classes, target_shape)


def phased_step(optimizer, compute_loss):
    """A closure running one training step (zero_grad, loss, backward, optimizer step) and returning
    the milliseconds of (forward + loss, backward, optimizer step, total). Either library."""

    def step():
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = compute_loss()
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()
        return np.array([forward - start, backward - forward, end - backward, end - start]) * 1e3

    return step


def minidl_step(name: str, model, images, targets):
    """One minidl training step as in the examples: cross-entropy, or Mask R-CNN's five losses summed."""
    x = minidl.Tensor(images)
    model.train()
    optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE)
    if name == "mask_rcnn":
        return phased_step(optimizer, lambda: sum(model(x, targets).values()))
    return phased_step(optimizer, lambda: F.cross_entropy(model(x), targets))


def torch_step(twin, images, targets):
    """The same for the PyTorch twin."""
    import torch

    x, y = torch.from_numpy(images), torch.from_numpy(targets)
    twin.train()
    optimizer = torch.optim.Adam(twin.parameters(), lr=LEARNING_RATE)
    return phased_step(optimizer, lambda: torch.nn.functional.cross_entropy(twin(x), y))


def timed_block(step, repeat: int) -> list:
    """``repeat`` step timings after running the step untimed for WARM_UP_SECONDS (at least once)."""
    start = time.perf_counter()
    step()
    while time.perf_counter() - start < WARM_UP_SECONDS:
        step()
    return [step() for _ in range(repeat)]


def interleaved(steps: dict, repeat: int, rounds: int) -> dict:
    """{library: (median phase times in ms)} from alternating blocks; the first library alternates."""
    times = {library: [] for library in steps}
    order = list(steps)
    for round_ in range(rounds):
        for library in order if round_ % 2 == 0 else reversed(order):
            times[library] += timed_block(steps[library], repeat)
    return {library: np.median(np.array(values), axis=0) for library, values in times.items()}


# ----------------------------------------------------------------------------- memory
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def step_memory(step) -> dict:
    """Peak NumPy allocations (tracemalloc) and peak resident-set growth (MB) of one step."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)  # hand freed heap memory back, so the step's growth shows in the resident set
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset the peak resident set (VmHWM) to the current one
        resident_before = _status_kb("VmRSS")
    except OSError:
        resident_before = None
    tracemalloc.start()
    step()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak = _status_kb("VmHWM")
    growth = None if resident_before is None or peak is None else (peak - resident_before) / 1024
    return {"traced": traced_peak / 2**20, "resident": growth}


# ----------------------------------------------------------------------------- one model
def benchmark_model(name: str, repeat: int, rounds: int, memory: bool, torch_available: bool) -> dict:
    config, shape, classes = MODELS[name]
    minidl.manual_seed(0)
    model = build_minidl(name, config)
    images, targets = make_batch(name, shape, classes, np.random.default_rng(0))
    parameters = sum(p.size for p in model.parameters())
    print(f"\n{name}: {parameters:,} parameters, batch {shape[0]} x {shape[1]} x {shape[2]} x {shape[3]}", flush=True)
    steps = {"minidl": minidl_step(name, model, images, targets)}
    if torch_available and name != "mask_rcnn":
        from benchmarks.torch_twins import build_twin, gradient_differences, load_minidl_weights

        # The check runs in float64 on copies: float32 rounding, summed in different orders by the two
        # libraries, moves some UNet weight gradients by ~1e-2 of their largest entry at initialisation.
        copy = build_minidl(name, config)
        copy.load_state_dict(model.state_dict())
        copy.double()
        twin = load_minidl_weights(build_twin(name, **config), copy)
        loss_difference, gradient_difference, where = gradient_differences(copy, twin, images.astype(np.float64),
                                                                           targets)
        print(f"  same computation (float64): loss differs by {loss_difference:.1e} (relative), gradients by at "
              f"most {gradient_difference:.1e} of the parameter's largest gradient ({where})")
        if loss_difference > LOSS_TOLERANCE or gradient_difference > GRADIENT_TOLERANCE:
            sys.exit(f"bench_step: {name} and its PyTorch twin differ (tolerances {LOSS_TOLERANCE:g} for the "
                     f"loss, {GRADIENT_TOLERANCE:g} for the gradients); the timings would not compare the same step")
        steps["torch"] = torch_step(load_minidl_weights(build_twin(name, **config), model), images, targets)
    elif name == "mask_rcnn":
        print("  no PyTorch twin (NumPy proposal sampling, no RoIAlign in PyTorch without torchvision): minidl only")
    workers.release_scratch()  # the scratch size printed below is then this model's float32 steps' alone
    medians = interleaved(steps, repeat, rounds)
    print(f"  {'phase':<16}{'minidl ms':>10}" + (f"{'torch ms':>10}{'ratio':>8}" if "torch" in medians else ""))
    for i, phase in enumerate(PHASES):
        row = f"  {phase:<16}{medians['minidl'][i]:10.1f}"
        if "torch" in medians:
            row += f"{medians['torch'][i]:10.1f}{medians['minidl'][i] / medians['torch'][i]:8.2f}"
        print(row)
    result = {"medians": medians}
    if memory:
        used = {library: step_memory(step) for library, step in steps.items()}
        line = f"  peak memory of a step: minidl NumPy {used['minidl']['traced']:.0f} MB (tracemalloc)"
        if used["minidl"]["resident"] is not None:
            line += f", resident set +{used['minidl']['resident']:.0f} MB"
            if "torch" in used:
                line += (f"; torch resident set +{used['torch']['resident']:.0f} MB; ratio "
                         f"{used['minidl']['resident'] / max(used['torch']['resident'], 1e-9):.2f}")
        print(line)
        print(f"  (besides, minidl's scratch buffers kept from step to step: {workers.scratch_bytes() / 2**20:.0f} MB)")
        result["memory"] = used
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="models to time")
    parser.add_argument("--repeat", type=int, default=5, help="timed steps per library per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the first library alternates)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory step")
    parser.add_argument("--no-torch", action="store_true", help="time minidl alone, even if torch is installed")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1:
        parser.error(f"--repeat and --rounds must be >= 1, got {args.repeat} and {args.rounds}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch_available = False
    if not args.no_torch:
        try:
            # before anything starts Numba's threads: torch then loads its own libgomp, as in a program
            # without minidl (loaded after Numba's, it would share Numba's, and its Adam step took 60
            # instead of 6 ms on this machine)
            import torch

            torch_available = True
        except ImportError:
            print("bench_step: torch is not installed (pip install torch==2.13.0): timing minidl alone")
    import numba

    threads = numba.get_num_threads()
    if torch_available:
        torch.set_num_threads(threads)
    print(f"float32, {threads} threads (Numba{' and torch' if torch_available else ''}), median of "
          f"{args.rounds} alternating rounds x {args.repeat} steps, load average {os.getloadavg()[0]:.1f}")
    results = {name: benchmark_model(name, args.repeat, args.rounds, not args.no_memory, torch_available)
               for name in args.models}
    print(f"\nNumba threading layer {numba.threading_layer()}; load average now {os.getloadavg()[0]:.1f}: "
          "other processes on these cores slow both libraries; "
          "the ratios, taken in alternating blocks in one process, are the comparable numbers")
    return results


if __name__ == "__main__":
    main()
