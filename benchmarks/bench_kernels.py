"""Speed of minidl's convolution (and pooling) kernels against PyTorch on a UNet's tensor shapes.

    python3 benchmarks/bench_kernels.py [--repeat 10] [--rounds 2] [--stat min|median] [--batch 8]
                                        [--schedule blocks|calls] [--keep-freed-memory] [--cpu-time]

For every shape it times the forward pass and forward + backward of minidl and PyTorch in this
process with the same number of threads, and prints minidl ms, torch ms, their ratio (minidl / torch:
below 1 means minidl is faster) and minidl's GFLOP/s, then the geometric-mean ratio per op family and
the first-call time (import + first call, in a fresh process, warm Numba cache). Nothing is
asserted: timings on a shared machine are noisy, so each number is the minimum (or median) of
``--repeat`` runs per round, over ``--rounds`` rounds.

Why blocks. Each library keeps a pool of threads that spin for a while after a parallel job before
they sleep: NumPy's OpenBLAS about 0.1 s (2^28 cycles), torch's OpenMP threads a shorter while. Timing
single calls alternately (``--schedule calls``) therefore runs each library against the other's
still-spinning threads, on 2 cores. We measured that this mostly measures the spinning: with
torch's OpenMP threads told to sleep at once (``OMP_WAIT_POLICY=passive``) the conv2d forward +
backward ratio went from 1.75 to 1.03, and with OpenBLAS's told to (``OPENBLAS_THREAD_TIMEOUT=4``)
to 2.68. A real program runs one library, so by default (``--schedule blocks``) each round first
runs one library for ``WARM_UP_SECONDS`` untimed (the other's threads go to sleep, caches and
allocator warm up), then times ``--repeat`` calls of it, then does the same for the other.

CPU time. On a machine shared with other jobs, wall-clock times measure the other jobs too. With one
thread (``NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1``) ``--cpu-time`` times each call by the CPU time of
this process instead, which they do not change. With more threads that sum counts every thread,
idle spinning included, so it is no measure of the wall-clock time a user waits for.

Page faults. Both libraries allocate their outputs (8 MB for a batch of 16 x 128 x 128 images) on
every call. glibc's malloc sometimes hands such blocks back to the system when they are freed, and
the next allocation then faults on every 4 kB page it touches (about 2 us each on the virtual
machine we measure on): one call can take 2-3x longer, in either library, depending on the state of
the heap. ``--keep-freed-memory`` sets glibc's mmap and trim thresholds to 1 GiB (``mallopt``) for the
whole process, so that freed memory is reused and neither library faults after warm-up.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import minidl.functional as F  # noqa: E402  (after the path fix, so the checkout is benchmarked)
from minidl import Tensor  # noqa: E402

# (C_in, C_out, side): the 3x3 convolutions of a UNet with 128 x 128 inputs and base width 16.
CONV_SHAPES = [(3, 16, 128), (16, 16, 128), (16, 32, 64), (32, 64, 32), (64, 128, 16), (128, 256, 8), (256, 256, 8)]
# 2x2 stride-2 transposed convolutions (decoder upsampling) and 2x2 max-pools (encoder) of the same tensors.
TRANSPOSED_SHAPES = [(256, 128, 8), (128, 64, 16), (64, 32, 32), (32, 16, 64), (16, 16, 128)]
POOL_SHAPES = [(16, 128), (32, 64), (64, 32), (128, 16), (256, 8)]

# Untimed running of one library before timing it: longer than OpenBLAS's 0.1 s of spinning (see above).
WARM_UP_SECONDS = 0.2

FIRST_CALL_SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
import minidl.functional as F
from minidl import Tensor
imported = time.perf_counter()
for shape in [(1, 2, 6, 6), (2, 16, 64, 64)]:  # one tile, and several tiles
    x = Tensor(np.ones(shape, np.float32), requires_grad=True)
    c = shape[1]
    F.conv2d(x, Tensor(np.ones((c, c, 3, 3), np.float32), requires_grad=True), padding=1).sum().backward()
    F.conv_transpose2d(x, Tensor(np.ones((c, c, 2, 2), np.float32), requires_grad=True), stride=2).sum().backward()
print(imported - start, time.perf_counter() - imported)
"""

def keep_freed_memory():
    """Tell glibc's malloc to serve blocks below 1 GiB from its heap and never trim the heap (see above)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    if not (libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)):
        sys.exit("bench_kernels: mallopt refused the thresholds")


# The clock of the timings: wall-clock time, or the process's CPU time with --cpu-time (see above).
clock = time.perf_counter


def milliseconds(fn) -> float:
    start = clock()
    fn()
    return (clock() - start) * 1e3


def timed_block(fn, repeat: int) -> list:
    """``repeat`` timings of fn after running it untimed for WARM_UP_SECONDS (at least twice)."""
    start, calls = time.perf_counter(), 0
    while calls < 2 or time.perf_counter() - start < WARM_UP_SECONDS:
        fn()
        calls += 1
    return [milliseconds(fn) for _ in range(repeat)]


def compare(run_minidl, run_torch, repeat: int, rounds: int, schedule: str, stat) -> tuple:
    """(``stat`` of minidl's timings, ``stat`` of torch's), taken in alternating blocks or single calls."""
    if schedule == "calls":
        for fn in (run_minidl, run_torch, run_minidl, run_torch):
            fn()
        ours, theirs = zip(*[(milliseconds(run_minidl), milliseconds(run_torch)) for _ in range(repeat * rounds)])
    else:
        ours, theirs = [], []
        for _ in range(rounds):
            ours += timed_block(run_minidl, repeat)
            theirs += timed_block(run_torch, repeat)
    return stat(ours), stat(theirs)


def minidl_and_torch_fns(minidl_op, torch_op, arrays, backward: bool):
    """Two closures running the same op (forward, or forward + backward of a fixed upstream gradient)."""
    import torch

    ours = [Tensor(a, requires_grad=backward) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=backward) for a in arrays]
    with torch.no_grad():
        upstream = np.random.default_rng(0).standard_normal(torch_op(*theirs).shape).astype(np.float32)
    upstream_torch = torch.tensor(upstream)

    def run_minidl():
        for t in ours:
            t.grad = None
        y = minidl_op(*ours)
        if backward:
            y.backward(upstream)

    def run_torch():
        for t in theirs:
            t.grad = None
        if not backward:
            with torch.no_grad():
                return torch_op(*theirs)
        torch_op(*theirs).backward(upstream_torch)

    return run_minidl, run_torch


def cases(batch: int):
    """(family, label, minidl op, torch op, input arrays, forward FLOPs or None)."""
    import torch

    rng = np.random.default_rng(0)
    convolutions = [  # family, shapes, kernel size, weight shape from (C_in, C_out), options
        ("conv2d", CONV_SHAPES, 3, lambda c_in, c_out: (c_out, c_in, 3, 3), dict(padding=1)),
        ("conv_transpose2d", TRANSPOSED_SHAPES, 2, lambda c_in, c_out: (c_in, c_out, 2, 2), dict(stride=2)),
    ]
    for family, shapes, kernel, weight_shape, options in convolutions:
        ours, theirs = getattr(F, family), getattr(torch.nn.functional, family)
        for c_in, c_out, side in shapes:
            arrays = [rng.standard_normal(s).astype(np.float32) for s in
                      ((batch, c_in, side, side), weight_shape(c_in, c_out), (c_out,))]
            # one multiply-add per weight and input pixel (conv2d with padding 1 keeps H_out = H)
            flops = 2 * batch * c_in * c_out * kernel * kernel * side * side
            yield (family, f"{c_in}->{c_out} @{side}", functools.partial(ours, **options),
                   functools.partial(theirs, **options), arrays, flops)
    if hasattr(F, "max_pool2d"):
        for channels, side in POOL_SHAPES:
            arrays = [rng.standard_normal((batch, channels, side, side)).astype(np.float32)]
            yield ("max_pool2d", f"{channels} @{side}", lambda x: F.max_pool2d(x, 2),
                   lambda x: torch.nn.functional.max_pool2d(x, 2), arrays, None)


def first_call_seconds() -> tuple:
    """(import time, first conv2d + conv_transpose2d forward/backward) in a fresh process."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", FIRST_CALL_SCRIPT], cwd=root, capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": str(root)})
    return tuple(float(v) for v in result.stdout.split())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per round (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per measurement (default 2)")
    parser.add_argument("--schedule", choices=["blocks", "calls"], default="blocks",
                        help="alternate warmed-up blocks of calls (default) or single calls (see the docstring)")
    parser.add_argument("--stat", choices=["min", "median"], default="min", help="statistic over the runs")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="keep freed memory in glibc's heap, so neither library page-faults (see the docstring)")
    parser.add_argument("--ops", nargs="+", default=["conv2d", "conv_transpose2d", "max_pool2d"],
                        help="op families to time (default: all)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time (shared machine, one thread; see the docstring)")
    args = parser.parse_args()
    global clock
    clock = time.process_time if args.cpu_time else time.perf_counter
    try:
        import torch
    except ImportError:
        sys.exit("bench_kernels: PyTorch is needed for the comparison (pip install torch==2.13.0)")
    import numba

    if args.keep_freed_memory:
        keep_freed_memory()
    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    stat = min if args.stat == "min" else np.median
    print(f"batch {args.batch}, float32, {threads} threads (Numba and torch), {args.stat} of {args.rounds} rounds x "
          f"{args.repeat} runs ({args.schedule}), "
          f"OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE', 'not set')}, "
          f"freed memory {'kept' if args.keep_freed_memory else 'as glibc decides'}, "
          f"{'CPU time' if args.cpu_time else 'wall-clock time'}, load average {os.getloadavg()[0]:.1f}")
    columns = f"{'minidl ms':>11}{'torch ms':>10}{'ratio':>7}{'GFLOP/s':>9}"
    print(f"{'':<32}{'forward':^37}   {'forward + backward':^37}")
    print(f"{'op':<17}{'shape':<15}{columns}   {columns}")
    ratios = {}
    for family, label, minidl_op, torch_op, arrays, flops in cases(args.batch):
        if family not in args.ops:
            continue
        row = f"{family:<17}{label:<15}"
        for backward, flop_factor in ((False, 1), (True, 3)):  # backward = 2 more products of the forward's size
            run_minidl, run_torch = minidl_and_torch_fns(minidl_op, torch_op, arrays, backward)
            ours, theirs = compare(run_minidl, run_torch, args.repeat, args.rounds, args.schedule, stat)
            ratios.setdefault((family, backward), []).append(ours / theirs)
            rate = f"{flop_factor * flops / ours / 1e6:9.1f}" if flops else f"{'-':>9}"
            row += f"{ours:11.2f}{theirs:10.2f}{ours / theirs:7.2f}{rate}   "
        print(row, flush=True)
    print("\ngeometric-mean ratio minidl / torch (below 1: minidl faster)")
    for (family, backward), values in ratios.items():
        print(f"  {family:<17}{'fwd+bwd' if backward else 'fwd':<9}{np.exp(np.mean(np.log(values))):6.2f}")
    print(f"Numba threading layer {numba.threading_layer()}; load average now {os.getloadavg()[0]:.1f} "
          "(other processes on these cores make the timings noisy)")
    imported, first = first_call_seconds()
    print(f"\nfirst call with a warm Numba cache (fresh process): import minidl.functional {imported:.2f} s, "
          f"first conv2d + conv_transpose2d forward/backward, small and large inputs {first:.2f} s")


if __name__ == "__main__":
    main()
