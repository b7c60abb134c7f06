"""Matrix products called from inside Numba kernels: NumPy's own OpenBLAS, through its C interface.

Why: the convolution fast paths (``conv_fast.py``, ``conv_fast_winograd.py``) cut their work into
tiles and run each worker's tiles in one parallel Numba loop, so that nothing goes back to Python
between the copies (im2col, the Winograd transforms) and the products. Numba cannot call
``np.matmul`` in such a loop, but it can call a C function through ctypes: here that is
``cblas_sgemm`` / ``cblas_dgemm`` of the OpenBLAS that NumPy itself loaded (threadpoolctl finds the
file and the symbols' prefix and suffix; NumPy's wheels ship ``scipy_cblas_sgemm64_`` with 64-bit
integer sizes).

``gemm`` computes C = alpha * op(A) @ op(B) + beta * C on row-major 2-D views whose rows are
contiguous (any row stride: a view of a wider buffer is fine), op(M) = M or M^T. The functions are
passed to the kernels as an argument (``functions()``), not read as globals, so that Numba can cache
the compiled kernels: a ctypes pointer baked into cached code would be wrong in the next process.

Where NumPy's BLAS is not an OpenBLAS that threadpoolctl can find (e.g. Apple's Accelerate),
``functions()`` is None and minidl's convolutions use the NumPy reference kernels instead.
"""

from __future__ import annotations

import ctypes
import functools

from numba import njit
from threadpoolctl import ThreadpoolController

ROW_MAJOR, NO_TRANSPOSE, TRANSPOSE = 101, 111, 112


@functools.lru_cache(maxsize=1)
def _numpy_openblas():
    """threadpoolctl's controller of the OpenBLAS that NumPy loaded (the first OpenBLAS found when none
    lies under NumPy's directory), or None."""
    controllers = ThreadpoolController().select(internal_api="openblas").lib_controllers
    controllers = sorted(controllers, key=lambda c: "numpy" not in c.filepath)  # NumPy's own first
    return controllers[0] if controllers else None


def _symbol(controller, name: str):
    """The library's function ``name`` under its symbol prefix and suffix (scipy_..._64_ in NumPy's wheels), or None."""
    prefix, suffix = getattr(controller, "_symbol_prefix", ""), getattr(controller, "_symbol_suffix", "")
    return getattr(controller.dynlib, f"{prefix}{name}{suffix}", None)


@functools.lru_cache(maxsize=1)
def functions():
    """(sgemm, dgemm): the ctypes functions of NumPy's OpenBLAS, or None when there is none to call."""
    controller = _numpy_openblas()
    if controller is None:
        return None
    size = ctypes.c_int64 if "64" in getattr(controller, "_symbol_suffix", "") else ctypes.c_int32  # ILP64: 64-bit sizes
    found = []
    for letter, scalar in (("s", ctypes.c_float), ("d", ctypes.c_double)):
        function = _symbol(controller, f"cblas_{letter}gemm")
        if function is None:
            return None
        function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, size, size, size, scalar,
                             ctypes.c_void_p, size, ctypes.c_void_p, size, scalar, ctypes.c_void_p, size]
        function.restype = None
        found.append(function)
    return tuple(found)


@functools.lru_cache(maxsize=1)
def thread_count_functions():
    """(get, set) of NumPy's OpenBLAS's thread count (one number for the whole process), or None.
    Two C calls: about 1 us, against ~13 us for threadpoolctl's limit and restore of every BLAS."""
    controller = _numpy_openblas()
    if controller is None:
        return None
    get, set_ = _symbol(controller, "openblas_get_num_threads"), _symbol(controller, "openblas_set_num_threads")
    if get is None or set_ is None:
        return None
    get.argtypes, get.restype = [], ctypes.c_int
    set_.argtypes, set_.restype = [ctypes.c_int], None
    return get, set_


@njit(cache=True, nogil=True)
def gemm(blas, a, transpose_a, b, transpose_b, c, beta):
    """c = op(a) @ op(b) + beta * c, in place, with blas = functions(); op(m) = m.T when transpose_m.
    a, b, c: 2-D arrays of one dtype (float32 or float64) whose rows are contiguous."""
    m, n = c.shape
    k = a.shape[0] if transpose_a else a.shape[1]
    if m == 0 or n == 0:
        return
    item = c.itemsize
    lda, ldb, ldc = max(1, a.strides[0] // item), max(1, b.strides[0] // item), max(1, c.strides[0] // item)
    op_a = TRANSPOSE if transpose_a else NO_TRANSPOSE
    op_b = TRANSPOSE if transpose_b else NO_TRANSPOSE
    if item == 4:
        blas[0](ROW_MAJOR, op_a, op_b, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, beta, c.ctypes.data, ldc)
    else:
        blas[1](ROW_MAJOR, op_a, op_b, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, beta, c.ctypes.data, ldc)

