"""Run the pieces of one kernel call on a small pool of threads, each with a single-threaded BLAS.

Why: each thread runs im2col on its own share of the images and then the matrix product on the
patch matrix it has just written and still holds in its cache, instead of one im2col followed by
one product on all of BLAS's threads (timings in ``benchmarks/README.md``).

``run(parts, work)`` calls ``work(part)`` for every part, one per thread: the calling thread and
``numba.get_num_threads() - 1`` pool threads (Numba's kernels release the GIL, and so do NumPy's
products). Meanwhile the BLAS libraries are held to one thread through threadpoolctl, so the
workers and BLAS's own threads never compete for the cores. Where threadpoolctl finds no BLAS it
can control, ``workers()`` is 1 and everything runs on the calling thread with BLAS as it is.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (NumPy's among them), found once (a search reads every loaded library)."""
    return ThreadpoolController().select(user_api="blas")


def workers() -> int:
    """How many threads ``run`` uses: Numba's thread count, or 1 when no BLAS can be held to one thread."""
    return numba.get_num_threads() if _blas().lib_controllers else 1


@functools.lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="minidl-kernel")


# A BLAS thread count is one number for the whole process, and minidl may be called from several
# Python threads at once: the first caller sets the limit, the last one to finish restores it.
_blas_lock = threading.Lock()
_blas_holders = 0
_blas_limit = None


@contextlib.contextmanager
def _single_threaded_blas():
    """Hold every BLAS library to one thread inside the block (nested and concurrent blocks share one limit)."""
    global _blas_holders, _blas_limit
    with _blas_lock:
        if _blas_holders == 0:
            _blas_limit = _blas().limit(limits=1)
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                _blas_limit.restore_original_limits()


def _after_fork_in_child():
    """A forked child has none of the parent's pool threads (a cached pool would wait for ever) and
    none of its holders: start afresh, with the BLAS thread counts from before the parent's limit."""
    global _blas_lock, _blas_holders
    _pool.cache_clear()
    _blas_lock = threading.Lock()
    if _blas_holders:
        _blas_limit.restore_original_limits()
    _blas_holders = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def run(parts: list, work) -> list:
    """[work(part) for part in parts]: the first part on the calling thread, the others on the pool's
    threads, all with single-threaded BLAS (one part, or no BLAS thread control: everything on the
    calling thread with BLAS as it is). Returns or raises only when every part has stopped."""
    if len(parts) == 1 or workers() == 1:
        return [work(part) for part in parts]
    with _single_threaded_blas():
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


# Handing work to another thread costs ~50 us, so smaller products run whole on the calling thread.
SHARED_PRODUCT = 1 << 24


def matmul(a, b):
    """a @ b with NumPy's rules, never on BLAS's own threads (they spin for a while after each product
    and take the cores from the convolution workers that run next): on the calling thread with
    single-threaded BLAS, or for products of at least SHARED_PRODUCT multiply-adds with the rows of
    the result shared among the workers (a batch of products with fewer rows than workers stays on
    the calling thread)."""
    count = workers()
    if count == 1:
        return a @ b
    rows = a.shape[-2] if a.ndim >= 2 else 1
    if a.ndim < 2 or b.ndim < 2 or rows < count or np.size(a) * b.shape[-1] < SHARED_PRODUCT:
        with _single_threaded_blas():
            return a @ b
    out = np.empty((*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), rows, b.shape[-1]), dtype=np.result_type(a, b))
    edges = [k * rows // count for k in range(count + 1)]

    def work(bounds):
        low, high = bounds
        np.matmul(a[..., low:high, :], b, out=out[..., low:high, :])

    run(list(zip(edges, edges[1:])), work)
    return out
