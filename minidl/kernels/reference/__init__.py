"""Plain-NumPy twins of the Numba kernels: same names, same arguments, same results.

They are written to be obviously correct rather than fast; the tests check each kernel against its twin.
"""
