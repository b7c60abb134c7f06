"""Numba kernels on raw ndarrays (no Tensor, no graph); ``minidl.kernels.reference`` holds NumPy twins.

Threads. The max-pool window search, batch norm, ReLU and dropout (large arrays), interpolation and
RoIAlign kernels run their loops on Numba's threads; the pooling gathers and scatters and NMS run on
the calling thread; the convolutions share their images among the worker threads of ``workers.py``
(see ``conv_fast.py`` and ``conv_fast_winograd.py``).

The one thing importing minidl changes for the whole process: it sets ``NUMBA_THREADING_LAYER`` to
``workqueue`` in ``os.environ`` unless the user set it. Numba's default OpenMP layer spins its idle
threads for a while and they steal the cores from the BLAS products that run next; workqueue's idle
threads sleep (numbers in ``benchmarks/README.md``). It must be chosen before Numba starts its
threads, hence this setting sits at the top of the package. One limit: the workqueue layer cannot
serve two Python threads at once, so a program that runs minidl ops from several threads should set
``NUMBA_THREADING_LAYER=omp``.
"""

import os
import sys

if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    if "numba" in sys.modules:  # imported before minidl: it has read the environment already
        sys.modules["numba"].config.THREADING_LAYER = "workqueue"
