"""Exercises: write the library's key pieces yourself and have them checked the way the library is.

    python -m minidl.exercises list                      # the exercises in order, what each teaches, which you solved
    python -m minidl.exercises start conv2d_backward     # copies a template into ./minidl_exercises/ (never overwrites)
    python -m minidl.exercises check conv2d_backward     # runs the checks on your function

Each template (``minidl/exercises/templates/<name>.py``) has the signatures, the maths to implement
and the shapes, and raises NotImplementedError. ``check`` runs hand-picked cases, then cases drawn
by hypothesis, and compares your functions with central differences in float64 against a random
upstream gradient (``minidl.gradcheck``), with exact identities and with the library's own ops;
the first failure is printed with its case, element, expected and actual values and a hint.
The checks live in ``catalogue.py``, the machinery in ``checking.py``.
"""
