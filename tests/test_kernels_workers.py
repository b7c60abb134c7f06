"""The worker threads of minidl.kernels.workers: how a convolution's output is shared among them, the
matrix products on them, and that BLAS's thread count comes back after each call, with concurrent
callers, errors and forks. (That every split gives the reference's values: test_kernels_conv.py.)"""

from unittest import mock

import numpy as np
import pytest

from minidl.kernels import conv as kernels
from minidl.kernels import workers
from minidl.kernels.reference import conv as reference


def blas_controls():
    controls = workers._openblas_thread_functions()
    if controls is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS whose thread count can be set")
    return controls


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
    with mock.patch.object(workers, "workers", return_value=threads), mock.patch.object(kernels, "CHUNK_ELEMENTS", 300):
        parts = kernels._parts(n_batch, 9, 40, rows_may_split)
    assert len(parts) == expected_parts
    np.testing.assert_array_equal(covered(parts, n_batch, 9), 1)
    if expected_parts > 1 and n_batch >= threads:  # whole images: each image belongs to one worker
        owned = [{n for images, _ in tiles for n in range(n_batch)[images]} for tiles in parts]
        assert sum(len(images) for images in owned) == n_batch


def test_blas_thread_count_comes_back_even_when_a_part_fails():
    set_threads, get_threads = blas_controls()
    before = get_threads()
    seen = workers.run([1, 2], lambda part: get_threads())
    assert seen == [1, 1] and get_threads() == before

    def fail(part):
        raise ValueError(f"part {part}")

    with pytest.raises(ValueError, match="part"):
        workers.run([1, 2], fail)
    assert get_threads() == before


def test_without_blas_thread_control_the_parts_run_on_the_calling_thread():
    import threading

    with mock.patch.object(workers, "_openblas_thread_functions", return_value=None):
        assert workers.workers() == 1
        names = workers.run([1, 2, 3], lambda part: (part, threading.current_thread().name))
    assert names == [(k, threading.current_thread().name) for k in (1, 2, 3)]


@pytest.mark.parametrize("shared_product", [0, workers.SHARED_PRODUCT])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("a_shape, b_shape, transpose_b", [
    ((130, 70), (70, 40), False),
    ((4, 65, 90), (90, 33), True),         # batched, b a transposed view
    ((2, 1, 80, 64), (3, 64, 50), False),  # broadcast batch dims
    ((5, 7), (7, 3), False),
    ((2, 64), (64, 700), False),           # fewer rows than some worker counts
    ((6,), (6, 4), False),                 # a vector
])
def test_matmul_on_the_workers_equals_numpy(threads, shared_product, a_shape, b_shape, transpose_b):
    """With SHARED_PRODUCT 0 every product with enough rows is shared among the workers; with the
    default these small ones run on the calling thread with single-threaded BLAS."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape)
    if transpose_b:  # a transposed view of a C-ordered array
        b = rng.standard_normal(b_shape[:-2] + b_shape[:-3:-1]).swapaxes(-1, -2)
    else:
        b = rng.standard_normal(b_shape)
    with mock.patch.object(workers, "workers", return_value=threads), \
            mock.patch.object(workers, "SHARED_PRODUCT", shared_product):
        product = workers.matmul(a, b)
    np.testing.assert_allclose(product, a @ b, rtol=1e-12, atol=1e-12)
    assert product.shape == (a @ b).shape and product.dtype == (a @ b).dtype


def test_concurrent_callers_leave_the_blas_thread_count_as_they_found_it():
    import threading

    _, get_threads = blas_controls()
    before = get_threads()
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12))
    w = np.random.default_rng(1).standard_normal((5, 3, 3, 3))
    expected = reference.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))
    errors = []

    def loop():
        for _ in range(40):
            y = kernels.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))
            if not np.allclose(y, expected, atol=1e-12):
                errors.append("wrong values")
            workers.matmul(np.ones((300, 300)), np.ones((300, 300)))

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and get_threads() == before


def test_no_part_is_still_running_when_run_raises():
    import time

    blas_controls()
    written = []

    def work(part):
        if part == 0:
            raise MemoryError("part 0")
        time.sleep(0.05)
        written.append(part)

    with pytest.raises(MemoryError):
        workers.run([0, 1], work)
    snapshot = list(written)
    time.sleep(0.1)
    assert written == snapshot  # nothing was written after run had raised


def test_a_forked_child_can_still_run_convolutions():
    import multiprocessing

    blas_controls()
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12))
    w = np.random.default_rng(1).standard_normal((5, 3, 3, 3))
    kernels.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(kernels.conv2d_forward, (x, w, (1, 1), (1, 1), (1, 1), (12, 12)))
        expected = reference.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))
        np.testing.assert_allclose(result.get(timeout=60), expected)  # a hung pool would time out
