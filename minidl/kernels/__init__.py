"""Numba kernels on raw ndarrays (no Tensor, no graph); ``minidl.kernels.reference`` holds NumPy twins.

Threads. The max-pool window search and its gathers and scatters, batch norm, ReLU and dropout
(large arrays), interpolation, RoIAlign and the convolutions (``conv_fast.py``,
``conv_fast_winograd.py``: each thread its own tiles, BLAS called from the loop;
``conv_fast_direct.py`` for few input channels) run their loops on Numba's threads; NMS runs on the
calling thread.

Numba's threading layer is Numba's choice (``NUMBA_THREADING_LAYER``; by default TBB if installed,
else OpenMP, else its own ``workqueue``). OpenMP's idle threads spin for a moment before they sleep,
so the many short parallel loops of a training step start in microseconds instead of the ~100 us it
takes to wake a sleeping thread (numbers in ``benchmarks/README.md``). Its limit: with GNU OpenMP, a
process forked after minidl ran a parallel kernel cannot run parallel kernels itself (Numba stops
it with "fork() called from a process already using GNU OpenMP"); use ``multiprocessing``'s "spawn"
or "forkserver" start method, or ``NUMBA_THREADING_LAYER=workqueue``.
"""
