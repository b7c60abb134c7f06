"""Numba kernels on raw ndarrays (no Tensor, no graph); ``minidl.kernels.reference`` holds NumPy twins.

Threads. The max-pool window search, interpolation and RoIAlign kernels run their loops on Numba's
threads (the pooling gathers and scatters run on the calling thread, see ``pooling.py``, and so
does NMS, whose greedy walk is sequential). The convolutions share their images among the
worker threads of ``workers.py``, each running im2col / col2im and single-threaded BLAS products
on its own share (see ``conv.py``). What matters on a small machine is how each pool *waits*
between jobs. Numba's default OpenMP layer spins its idle threads for a while, and those spinning
threads steal the cores from the BLAS threads that run next (and from every other process).
Measured on 2 cores shared with other jobs (load average ~9), when im2col still ran
on Numba's threads: forward + backward of all conv2d and conv_transpose2d layers of
benchmarks/bench_kernels.py took 22 s with the OpenMP layer and 0.4-1.8 s with Numba's
``workqueue`` layer, whose idle threads wait on a condition variable (asleep, off the cores) until
the next job. So workqueue is the default here. It must be chosen before Numba starts its
threads, hence this setting sits at the top of the package; a value the user set in the
environment wins. One limit: the workqueue layer cannot serve two Python threads at once, so a
program that runs minidl ops from several threads should set ``NUMBA_THREADING_LAYER=omp``.
"""

import os
import sys

if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    if "numba" in sys.modules:  # imported before minidl: it has read the environment already
        sys.modules["numba"].config.THREADING_LAYER = "workqueue"
