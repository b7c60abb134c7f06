"""What the parallel kernels share: how many parts to cut work into, single-threaded BLAS while they
run, per-part scratch buffers, and matrix products on Numba's threads.

Why: the convolution fast paths cut their work into one part per Numba thread and run every part in
one parallel Numba loop (``prange``) that calls BLAS from inside (``blas.py``); each thread copies its
own tiles (im2col, the Winograd transforms) and multiplies them while they are still in its cache.
BLAS must then run single-threaded, or its own threads would fight Numba's for the cores. Starting
a parallel loop on Numba's threads costs a few microseconds with its OpenMP layer, against ~100 us to
wake a sleeping thread of a Python pool on this project's virtual machine (timings in
``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading

import numba
import numpy as np
from numba import njit, prange
from threadpoolctl import ThreadpoolController

from . import blas


@functools.lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (NumPy's among them), found once (a search reads every loaded library)."""
    return ThreadpoolController().select(user_api="blas")


def workers() -> int:
    """How many parts the parallel kernels cut their work into: Numba's thread count."""
    return numba.get_num_threads()


# A BLAS thread count is one number for the whole process, and minidl may be called from several
# Python threads at once: the first caller sets the limit, the last one to finish restores it.
_blas_lock = threading.Lock()
_blas_holders = 0
_blas_restore = None  # called by the last holder: puts the thread counts back


def _limit_blas_to_one_thread():
    """Set BLAS to one thread and return a function that restores the count: NumPy's OpenBLAS directly,
    or every BLAS that threadpoolctl can control."""
    counts = blas.thread_count_functions()
    if counts is not None:
        get, set_ = counts
        before = get()
        set_(1)
        return lambda: set_(before)
    return _blas_controller().limit(limits=1).restore_original_limits


@contextlib.contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread inside the block (nested and concurrent blocks share one limit)."""
    global _blas_holders, _blas_restore
    with _blas_lock:
        if _blas_holders == 0:
            _blas_restore = _limit_blas_to_one_thread()
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                _blas_restore()


def _after_fork_in_child():
    """A forked child has none of the parent's other threads, so none of its holders: start afresh,
    with the BLAS thread counts from before the parent's limit."""
    global _blas_lock, _blas_holders
    _blas_lock = threading.Lock()
    if _blas_holders:
        _blas_restore()
    _blas_holders = 0


os.register_at_fork(after_in_child=_after_fork_in_child)

_scratch = threading.local()


def scratch(slot, parts: int, size: int, dtype) -> np.ndarray:
    """A C-contiguous (parts, size) array, one row per part, in a buffer that the calling thread keeps
    for ``slot`` (grown to the largest request seen; valid until its next request for the same slot).
    A freshly allocated large array page-faults on its first write to every 4 kB page; a kept one does not."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    nbytes = parts * size * np.dtype(dtype).itemsize
    if slot not in buffers or buffers[slot].nbytes < nbytes:
        buffers[slot] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buffers[slot][:nbytes].view(dtype).reshape(parts, size)


def release_scratch():
    """Drop the calling thread's scratch buffers (the next kernel call allocates afresh)."""
    _scratch.__dict__.get("buffers", {}).clear()


def scratch_bytes() -> int:
    """The bytes held by the calling thread's scratch buffers (kept between calls, so a step's memory
    growth does not show them)."""
    return sum(buffer.nbytes for buffer in _scratch.__dict__.get("buffers", {}).values())


# A product smaller than this many multiply-adds runs whole on the calling thread (a parallel start
# and the split cost more than they save; measured in benchmarks/README.md).
SHARED_PRODUCT = 1 << 20


def matmul(a, b):
    """a @ b with NumPy's rules, never on BLAS's own threads (they spin for a while after each product
    and take the cores from the parallel kernels that run next): 2-D float products of at least
    SHARED_PRODUCT multiply-adds have the rows of the result shared among Numba's threads, anything
    else runs on the calling thread with single-threaded BLAS."""
    functions = blas.functions()
    shared = (functions is not None and workers() > 1 and a.ndim == b.ndim == 2 and a.dtype == b.dtype
              and a.dtype in (np.float32, np.float64) and len(a) >= workers()
              and a.size * b.shape[1] >= SHARED_PRODUCT)
    if not shared:
        with single_threaded_blas():
            return a @ b
    out = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    (a, transpose_a), (b, transpose_b) = _rows_contiguous(a), _rows_contiguous(b)
    with single_threaded_blas():
        _shared_product(functions, a, transpose_a, b, transpose_b, out, workers())
    return out


def _rows_contiguous(m):
    """(m or m.T, transposed) such that the array passed to BLAS has contiguous rows (a copy when neither has)."""
    if m.strides[1] == m.itemsize:
        return m, False
    if m.strides[0] == m.itemsize:
        return m.T, True
    return np.ascontiguousarray(m), False


@njit(cache=True, nogil=True, parallel=True)
def _shared_product(functions, a, transpose_a, b, transpose_b, out, parts):
    """out = op(a) @ op(b), the rows of out cut into ``parts`` bands, one per thread."""
    rows = out.shape[0]
    for part in prange(parts):
        low, high = part * rows // parts, (part + 1) * rows // parts
        a_rows = a[:, low:high] if transpose_a else a[low:high]
        blas.gemm(functions, a_rows, transpose_a, b, transpose_b, out[low:high], 0.0)
