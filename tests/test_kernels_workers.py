"""What the parallel kernels share (minidl.kernels.workers, minidl.kernels.blas): how a convolution's
output is cut into parts, BLAS called from Numba, the shared matrix products, and that BLAS's thread
count is 1 inside a kernel and comes back after it, with concurrent callers, errors and forks. (That
every split gives the reference's values: test_kernels_conv.py.)"""

import os
import threading
from unittest import mock

import numpy as np
import pytest

from minidl.kernels import conv as kernels
from minidl.kernels import blas, conv_fast, workers
from minidl.kernels.reference import conv as reference


def blas_threads() -> int:
    """The thread count of NumPy's OpenBLAS (skips the test when there is none that threadpoolctl finds)."""
    controller = blas._numpy_openblas()
    if controller is None:
        pytest.skip("threadpoolctl finds no OpenBLAS under NumPy here")
    return controller.num_threads


def covered(parts, n_batch, out_h):
    """How often each (image, output row) appears among the parts' tiles."""
    count = np.zeros((n_batch, out_h), dtype=int)
    for tiles in parts:
        for images, (row0, row1) in tiles:
            count[images, row0:row1] += 1
    return count


@pytest.mark.parametrize("threads, n_batch, rows_may_split, expected_parts", [
    (1, 4, True, 1), (2, 4, True, 2), (3, 4, True, 3), (2, 1, True, 2), (2, 1, False, 1), (3, 2, False, 1),
])
def test_parts_cover_every_output_once(threads, n_batch, rows_may_split, expected_parts):
    with mock.patch.object(workers, "workers", return_value=threads), mock.patch.object(conv_fast, "CHUNK_ELEMENTS", 300):
        parts = conv_fast.parts(n_batch, 9, 40, rows_may_split)
    assert len(parts) == expected_parts
    np.testing.assert_array_equal(covered(parts, n_batch, 9), 1)
    if expected_parts > 1 and n_batch >= threads:  # whole images: each image belongs to one worker
        owned = [{n for images, _ in tiles for n in range(n_batch)[images]} for tiles in parts]
        assert sum(len(images) for images in owned) == n_batch


def test_blas_runs_on_one_thread_inside_the_block_and_comes_back_even_when_it_raises():
    before = blas_threads()
    with workers.single_threaded_blas():
        assert blas_threads() == 1
        with workers.single_threaded_blas():  # nested
            pass
        assert blas_threads() == 1
    assert blas_threads() == before
    with pytest.raises(ValueError, match="inside"), workers.single_threaded_blas():
        raise ValueError("inside")
    assert blas_threads() == before


def test_without_an_openblas_to_call_the_kernels_compute_with_the_numpy_twins():
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    g = np.random.default_rng(2).standard_normal((2, 4, 9, 8))
    geometry = (1, 1), (1, 1), (1, 1)
    with mock.patch.object(blas, "functions", return_value=None), \
            mock.patch.object(conv_fast, "patch_products", side_effect=AssertionError("fast path")):
        np.testing.assert_array_equal(kernels.conv2d_forward(x, w, *geometry, (9, 8)),
                                      reference.conv2d_forward(x, w, *geometry, (9, 8)))
        np.testing.assert_array_equal(kernels.conv2d_backward_weight(g, x, (3, 3), *geometry),
                                      reference.conv2d_backward_weight(g, x, (3, 3), *geometry))
        np.testing.assert_array_equal(kernels.conv2d_backward_input(g, w, (9, 8), *geometry),
                                      reference.conv2d_backward_input(g, w, (9, 8), *geometry))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_from_numba_equals_numpy_on_views_of_wider_buffers(dtype, transpose_a, transpose_b):
    """c = op(a) @ op(b) + beta c on views whose rows are contiguous but further apart than their
    length (as the kernels' views into y, g and the scratch buffers), beta 0 and 1."""
    rng = np.random.default_rng(0)
    m, n, k = 7, 5, 6
    a = rng.standard_normal((20, 30)).astype(dtype)[2:2 + (k if transpose_a else m), 3:3 + (m if transpose_a else k)]
    b = rng.standard_normal((20, 30)).astype(dtype)[1:1 + (n if transpose_b else k), 4:4 + (k if transpose_b else n)]
    wide = rng.standard_normal((m, 11)).astype(dtype)
    outside = np.delete(wide, np.s_[2:2 + n], axis=1)
    c, start = wide[:, 2:2 + n], wide[:, 2:2 + n].copy()
    expected = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    for beta in (0.0, 1.0):
        blas.gemm(blas.functions(), a, transpose_a, b, transpose_b, c, beta)
        tolerance = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(c, expected + beta * start, rtol=tolerance, atol=tolerance)
        start = c.copy()
    np.testing.assert_array_equal(np.delete(wide, np.s_[2:2 + n], axis=1), outside)  # nothing written beside c


@pytest.mark.parametrize("shared_product", [0, workers.SHARED_PRODUCT])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("a_shape, b_shape, transpose_a, transpose_b", [
    ((130, 70), (70, 40), False, False),
    ((130, 70), (70, 40), True, True),      # transposed views of C-ordered arrays
    ((4, 65, 90), (90, 33), False, True),   # batched: NumPy on the calling thread
    ((2, 1, 80, 64), (3, 64, 50), False, False),  # broadcast batch dims
    ((5, 7), (7, 3), False, False),
    ((2, 64), (64, 700), False, False),     # fewer rows than some thread counts
    ((6,), (6, 4), False, False),           # a vector
])
def test_matmul_equals_numpy(threads, shared_product, a_shape, b_shape, transpose_a, transpose_b):
    """With SHARED_PRODUCT 0 every 2-D product with enough rows is shared among the threads; with the
    default these small ones run on the calling thread with single-threaded BLAS."""
    rng = np.random.default_rng(0)

    def operand(shape, transposed):  # transposed: a transposed view of a C-ordered array
        if transposed:
            return rng.standard_normal(shape[:-2] + shape[:-3:-1]).swapaxes(-1, -2)
        return rng.standard_normal(shape)

    a, b = operand(a_shape, transpose_a), operand(b_shape, transpose_b)
    with mock.patch.object(workers, "workers", return_value=threads), \
            mock.patch.object(workers, "SHARED_PRODUCT", shared_product):
        product = workers.matmul(a, b)
    np.testing.assert_allclose(product, a @ b, rtol=1e-12, atol=1e-12)
    assert product.shape == (a @ b).shape and product.dtype == (a @ b).dtype


@pytest.mark.skipif(os.environ.get("NUMBA_THREADING_LAYER") == "workqueue",
                    reason="Numba's workqueue layer cannot serve parallel loops from several threads at once")
def test_concurrent_callers_get_right_values_and_leave_the_blas_thread_count_as_they_found_it():
    """Three Python threads convolving at once: each has its own scratch buffers, and BLAS's thread
    count comes back when the last one is done."""
    before = blas_threads()
    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((4, c_in, 12, 12)), rng.standard_normal((16, c_in, 3, 3))) for c_in in (3, 16, 24)]
    expected = [reference.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12)) for x, w in cases]
    errors = []

    def loop(k):
        x, w = cases[k]
        for _ in range(40):
            y = kernels.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))
            if not np.allclose(y, expected[k], atol=1e-12):
                errors.append(f"wrong values in thread {k}")
            workers.matmul(np.ones((300, 300)), np.ones((300, 300)))

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and blas_threads() == before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_inside_a_single_threaded_blas_block_gets_the_original_thread_count():
    """The parent holds BLAS to one thread while a kernel runs; a child forked meanwhile has no kernel
    running and must not inherit the limit for ever."""
    before = blas_threads()
    with workers.single_threaded_blas():
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status, never return into pytest
            os._exit(0 if blas_threads() == before else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_scratch_is_kept_per_thread_until_released():
    """A buffer grows to the largest request of its slot and is reused; another thread has its own; release
    drops the calling thread's buffers only."""
    def held_elsewhere(result):
        result.append((workers.scratch_bytes(), workers.scratch("test slot", 1, 10, np.float64).nbytes))

    workers.release_scratch()
    first = workers.scratch("test slot", 2, 1000, np.float32)
    assert first.shape == (2, 1000) and workers.scratch_bytes() == 8000
    smaller = workers.scratch("test slot", 1, 10, np.float64)
    assert np.shares_memory(first, smaller) and workers.scratch_bytes() == 8000
    other = []
    thread = threading.Thread(target=held_elsewhere, args=(other,))
    thread.start()
    thread.join()
    assert other == [(0, 80)] and workers.scratch_bytes() == 8000
    workers.release_scratch()
    assert workers.scratch_bytes() == 0
    assert not np.shares_memory(first, workers.scratch("test slot", 2, 1000, np.float32))
    workers.release_scratch()
