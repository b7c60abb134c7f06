"""Numba kernels on raw ndarrays (no Tensor, no graph); ``minidl.kernels.reference`` holds NumPy twins."""
