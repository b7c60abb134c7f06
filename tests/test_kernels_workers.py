"""The worker threads of minidl.kernels.workers: how a convolution's output is shared among them, the
matrix products on them, and that BLAS's thread count is 1 during a call and comes back after it, with
concurrent callers, errors and forks. (That every split gives the reference's values: test_kernels_conv.py.)"""

import threading
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from minidl.kernels import conv as kernels
from minidl.kernels import conv_fast, workers
from minidl.kernels.reference import conv as reference


def blas_threads() -> list:
    """The thread count of every BLAS library threadpoolctl finds (skips the test when there is none)."""
    counts = [library["num_threads"] for library in ThreadpoolController().select(user_api="blas").info()]
    if not counts:
        pytest.skip("threadpoolctl finds no BLAS here whose thread count can be set")
    return counts


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


def test_blas_runs_on_one_thread_inside_run_and_comes_back_even_when_a_part_fails():
    before = blas_threads()
    seen = workers.run([1, 2], lambda part: blas_threads())
    assert seen == [[1] * len(before)] * 2 and blas_threads() == before

    def fail(part):
        raise ValueError(f"part {part}")

    with pytest.raises(ValueError, match="part"):
        workers.run([1, 2], fail)
    assert blas_threads() == before


def test_without_blas_thread_control_the_parts_run_on_the_calling_thread():
    with mock.patch.object(workers, "_blas", return_value=SimpleNamespace(lib_controllers=[])):
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
    before = blas_threads()
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
    assert not errors and blas_threads() == before


def test_no_part_is_still_running_when_run_raises():
    """Part 0 raises once part 1 has started; part 1 then writes when the test says run has raised (or
    after 0.5 s, as it must when run waits for it). A run that raised without waiting lets the test's
    snapshot miss part 1's write."""
    blas_threads()
    started, raised, finished = threading.Event(), threading.Event(), threading.Event()
    written = []

    def work(part):
        if part == 0:
            assert started.wait(timeout=60)
            raise MemoryError("part 0")
        started.set()
        raised.wait(timeout=0.5)
        written.append(part)
        finished.set()

    with pytest.raises(MemoryError):
        workers.run([0, 1], work)
    snapshot = list(written)
    raised.set()
    assert finished.wait(timeout=60)
    assert written == snapshot == [1]  # part 1 had written before run raised


def test_a_forked_child_can_still_run_convolutions():
    import multiprocessing

    blas_threads()
    x = np.random.default_rng(0).standard_normal((4, 3, 12, 12))
    w = np.random.default_rng(1).standard_normal((5, 3, 3, 3))
    kernels.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(kernels.conv2d_forward, (x, w, (1, 1), (1, 1), (1, 1), (12, 12)))
        expected = reference.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), (12, 12))
        np.testing.assert_allclose(result.get(timeout=60), expected)  # a hung pool would time out
