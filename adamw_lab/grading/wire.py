"""What crosses the kernel boundary: the grader's inputs in, the student's answers out.

This module imports only NumPy and knows no answers.  The grader sends its
*source text* to the student's kernel at call time (the kernel cannot import
:mod:`adamw_lab.grading`: the sandbox holds no copy of it), and the notebook
check uses the same functions in the notebook's own process.
"""
import numpy as np


class NotPlainData(TypeError):
    """The answer is not a number, an array of numbers, or a tuple of those."""


def decode_argument(item):
    """A JSON argument ``["array", nested list]``, ``["float", x]`` or ``["int", n]`` as Python/NumPy."""
    kind, value = item
    if kind == "array":
        return np.asarray(value, dtype=np.float64)
    if kind == "int":
        return int(value)
    return float(value)


def to_plain(value, depth=0):
    """What a student's function returned, as JSON-ready plain data (floats and lists).

    Accepts Python and NumPy numbers, NumPy arrays, torch tensors, and
    lists/tuples of those.  Other objects (for instance an object whose
    ``__eq__`` always says True) raise :class:`NotPlainData`.
    """
    if depth > 8:
        raise NotPlainData("nested too deeply")
    if value is None or isinstance(value, (bool, np.bool_)):
        raise NotPlainData(f"{type(value).__name__} is not a number")
    if type(value) in (int, float) or isinstance(value, (np.integer, np.floating)):
        return float(value)
    if type(value) is np.ndarray:
        if value.dtype.kind not in "iuf":
            raise NotPlainData(f"array of dtype {value.dtype}")
        return value.astype(np.float64).tolist()
    if type(value).__module__ == "torch" and type(value).__name__ in ("Tensor", "Parameter"):
        return to_plain(value.detach().cpu().double().numpy(), depth)
    if type(value) in (list, tuple):
        return [to_plain(v, depth + 1) for v in value]
    raise NotPlainData(f"{type(value).__name__} is not a number, an array or a tuple")
