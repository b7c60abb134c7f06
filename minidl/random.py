"""The global random-number generator behind weight initialisation and dropout.

``minidl.manual_seed(seed)`` (like ``torch.manual_seed``) makes every later random draw that does
not pass its own ``generator=`` reproducible: layer initialisation (``minidl.nn.init``) and dropout
masks (``F.dropout``, ``F.dropout2d``). Functions that draw random numbers take an optional
``generator`` (a ``numpy.random.Generator``) for a private stream; ``None`` means this global one.
"""

from __future__ import annotations

import numpy as np

default_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator in place (references to it stay valid) and return it."""
    default_generator.bit_generator.state = np.random.PCG64(seed).state
    return default_generator


def resolve_generator(generator: np.random.Generator | None) -> np.random.Generator:
    """``generator`` itself, or the global generator when it is None."""
    return default_generator if generator is None else generator
