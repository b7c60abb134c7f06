"""Run pieces of one kernel call on a small pool of threads, each with a single-threaded BLAS.

Why. A convolution is im2col (memory traffic, one thread) followed by a GEMM (BLAS, all threads).
Run that way on this 2-core machine, each GEMM reads a patch matrix that the other core has just
written, and pulling it across costs: a 128 x 576 by 576 x 1820 product took 1.34 ms on data both
cores had read before and 2.14 ms right after one thread rewrote it. Giving each thread its own
share of the images instead (its own im2col, then its own single-threaded GEMM on data still in its
cache) made the conv2d layers of benchmarks/bench_kernels.py, forward and both gradients, 10-13%
faster (geometric mean of the 7 per-layer ratios: 0.87 and 0.90 in two runs, each library timed
in warmed-up blocks; 16 -> 32 channels at 64 x 64: 11.1 -> 7.9 ms).

How. ``run(parts, work)`` calls ``work(part)`` for every part, one per thread: the calling thread
and ``numba.get_num_threads() - 1`` pool threads (Numba's kernels release the GIL, and so do
NumPy's products), while NumPy's OpenBLAS is held to one thread, so the threads and BLAS never
compete for the cores.
OpenBLAS has no per-thread setting (``openblas_set_num_threads_local`` changes the global count in
NumPy's build), so the count is set to 1 for the call and restored after it.

The other matrix products (``minidl.functional.matmul``, hence every Linear layer) go through
``matmul`` for the same reason: OpenBLAS's own threads spin for about 0.1 s after each product
they share, and took the cores from the convolution workers that ran next. Training the Mask
R-CNN example took 0.20-0.21 s a step with its Linear layers on OpenBLAS's two threads,
0.15-0.16 s with every product kept off them (150 steps, two runs each), and 0.18-0.20 s with no
workers at all.

When this cannot work (``workers()`` is 1): one thread wanted, or a BLAS we cannot hold to one
thread (MKL, Apple's Accelerate, an OpenBLAS without the symbol). Then everything runs on the
calling thread with BLAS's own threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np


@functools.lru_cache(maxsize=1)
def _openblas_thread_functions():
    """(set_num_threads, get_num_threads) of the OpenBLAS that NumPy uses, or None.

    The symbols are looked up through NumPy's own extension module, so the search covers exactly
    the libraries it links (another OpenBLAS in the process, e.g. SciPy's, is not found). NumPy's
    wheels bundle OpenBLAS with renamed symbols (``scipy_openblas_set_num_threads64_``); older
    wheels and system builds keep ``openblas_set_num_threads`` (``64_`` suffix for 64-bit integer
    builds). Both functions take and return a C int."""
    core = getattr(np, "_core", None) or np.core  # NumPy 2 / NumPy 1
    try:
        library = ctypes.CDLL(core._multiarray_umath.__file__)
    except OSError:
        return None
    for prefix in ("scipy_openblas_", "openblas_"):
        for suffix in ("64_", ""):
            setter = getattr(library, f"{prefix}set_num_threads{suffix}", None)
            getter = getattr(library, f"{prefix}get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


def workers() -> int:
    """How many threads ``run`` uses: Numba's thread count, or 1 when BLAS cannot be held to one thread."""
    return numba.get_num_threads() if _openblas_thread_functions() is not None else 1


@functools.lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="minidl-kernel")


# OpenBLAS's thread count is one number for the whole process, and minidl may be called from
# several Python threads at once: the first to need single-threaded BLAS saves the count and sets
# 1, the last to finish restores it.
_blas_lock = threading.Lock()
_blas_holders = 0
_blas_saved_threads = 0


@contextlib.contextmanager
def _blas_on_one_thread():
    """Hold NumPy's OpenBLAS to one thread inside the block."""
    global _blas_holders, _blas_saved_threads
    set_threads, get_threads = _openblas_thread_functions()
    with _blas_lock:
        if _blas_holders == 0:
            _blas_saved_threads = get_threads()
            set_threads(1)
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                set_threads(_blas_saved_threads)


def _after_fork_in_child():
    """A forked child has none of the parent's pool threads (a cached pool would wait for ever) and
    none of its holders: start afresh, with the BLAS thread count the parent had saved."""
    global _blas_lock, _blas_holders
    _pool.cache_clear()
    _blas_lock = threading.Lock()
    if _blas_holders and _openblas_thread_functions() is not None:
        _openblas_thread_functions()[0](_blas_saved_threads)
    _blas_holders = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def run(parts: list, work) -> list:
    """[work(part) for part in parts]: the first part on the calling thread, the others on the pool's
    threads, all with single-threaded BLAS (one part, or no BLAS thread control: everything on the
    calling thread with BLAS as it is). Returns or raises only when every part has stopped."""
    if len(parts) == 1 or _openblas_thread_functions() is None:
        return [work(part) for part in parts]
    with _blas_on_one_thread():
        others = [_pool(len(parts) - 1).submit(work, part) for part in parts[1:]]
        try:
            first = work(parts[0])  # the calling thread works instead of waiting idle
        except BaseException:
            for future in others:  # the parts not started yet
                future.cancel()
            raise
        finally:
            concurrent.futures.wait(others)  # no part may still be writing when run returns or raises
        return [first] + [future.result() for future in others]


# Handing work to another thread costs ~50 us here (a trivial two-part run: 49 us), so products of
# fewer multiply-adds than this run whole on the calling thread. Measured, single-threaded on the
# calling thread against shared among two threads: 2^20 multiply-adds 23 against 82 us, 2^23 165
# against 207 us, 2^26 1295 against 735 us.
SHARED_PRODUCT = 1 << 24


def matmul(a, b):
    """a @ b with NumPy's rules, never on OpenBLAS's own threads: on the calling thread with
    single-threaded BLAS, or for large products with the rows of the result shared among the
    workers (a batch of products with fewer rows than workers stays on the calling thread)."""
    count = workers()
    if count == 1:
        return a @ b
    rows = a.shape[-2] if a.ndim >= 2 else 1
    if a.ndim < 2 or b.ndim < 2 or rows < count or np.size(a) * b.shape[-1] < SHARED_PRODUCT:
        with _blas_on_one_thread():
            return a @ b
    out = np.empty((*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), rows, b.shape[-1]), dtype=np.result_type(a, b))
    edges = [k * rows // count for k in range(count + 1)]

    def work(bounds):
        low, high = bounds
        np.matmul(a[..., low:high, :], b, out=out[..., low:high, :])

    run(list(zip(edges, edges[1:])), work)
    return out
