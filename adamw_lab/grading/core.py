"""Question definitions and the comparison shared by the notebook checks and the grader.

A :class:`Question` names the function the student writes (``target``), how to
draw fresh random inputs for it (``make_inputs``), and how to compute the right
answer from :mod:`adamw_lab.reference` (``expected``).  Both places that judge
an answer use it:

- the check cell in the notebook (:func:`adamw_lab.grading.check`) calls the
  student's function in the notebook's own process, for instant feedback;
- the batch grader calls it in a sandboxed kernel and receives only plain JSON
  numbers back; the comparison runs in the grader's process.

An answer is compared as plain data: a float, a nested list of floats with the
expected shape, or a tuple of those.  Anything else scores zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

# Statuses of one question, shown to students as-is.
PASSED = "通过"
FAILED = "未通过"
TODO = "未完成"


@dataclass(frozen=True)
class Question:
    id: str                                   # stable id, "ex03.q2"
    points: int
    problem_ids: tuple[int, ...]              # the source's [@problem_id:...] it covers
    target: str                               # name of the function the student defines
    make_inputs: Callable[[np.random.Generator], tuple]   # positional arguments, fresh each call
    expected: Callable[..., Any]              # reference answer for those arguments
    hint: str                                 # Chinese, says where to look, never the answer
    rtol: float = 1e-6
    atol: float = 1e-9
    cases: int = 3                            # random input sets per check
    fixed_inputs: tuple = field(default_factory=tuple)  # edge cases always tried first

    @property
    def exercise(self) -> str:
        return self.id.split(".")[0]

    def tolerance_text(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"

    def draw_cases(self, rng: np.random.Generator) -> list[tuple]:
        return list(self.fixed_inputs) + [self.make_inputs(rng) for _ in range(self.cases)]


class NotPlainData(TypeError):
    """The answer is not a number, an array of numbers, or a tuple of those."""


# --- plain data -----------------------------------------------------------------------

def encode_argument(x):
    """A positional argument as JSON: ``["array", nested list]``, ``["float", x]`` or ``["int", n]``."""
    if isinstance(x, np.ndarray):
        return ["array", x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        raise TypeError("boolean arguments are not used")
    if isinstance(x, (int, np.integer)):
        return ["int", int(x)]
    if isinstance(x, (float, np.floating)):
        return ["float", float(x)]
    raise TypeError(f"unsupported argument type {type(x).__name__}")


def decode_argument(item):
    kind, value = item
    if kind == "array":
        return np.asarray(value, dtype=np.float64)
    if kind == "int":
        return int(value)
    return float(value)


def validate_plain(value, depth: int = 0, budget: list | None = None):
    """Return ``value`` if it is a number or nested lists of numbers, else raise NotPlainData.

    This is the only shape of data the grader accepts from a student's kernel
    (after ``json.loads``): ``float``/``int`` (not ``bool``) and ``list``.
    """
    budget = budget if budget is not None else [2_000_000]
    budget[0] -= 1
    if budget[0] < 0:
        raise NotPlainData("answer too large")
    if depth > 8:
        raise NotPlainData("answer nested too deeply")
    if type(value) in (int, float):
        return value
    if type(value) is list:
        for v in value:
            validate_plain(v, depth + 1, budget)
        return value
    raise NotPlainData(f"{type(value).__name__} is not plain data")


def to_plain(value, depth: int = 0):
    """Convert what a student's function returned to JSON-ready plain data (in the student's process).

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


def expected_plain(value):
    """The reference answer as plain data with its structure: float, ndarray, or tuple."""
    if isinstance(value, tuple):
        return tuple(expected_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    return float(value)


def compare(question: Question, got, want) -> str | None:
    """None when ``got`` (plain data) matches ``want`` (reference); else why not, in Chinese.

    The reason never contains the expected values.
    """
    if isinstance(want, tuple):
        if type(got) is not list or len(got) != len(want):
            return f"应返回 {len(want)} 个结果组成的元组"
        for i, (g, w) in enumerate(zip(got, want)):
            why = compare(question, g, w)
            if why:
                return f"第 {i + 1} 个返回值：{why}"
        return None
    if isinstance(want, np.ndarray):
        try:
            arr = np.asarray(got, dtype=np.float64)
        except (ValueError, TypeError):
            return "返回值不是规则的数值数组"
        if arr.shape != want.shape:
            return f"形状应为 {want.shape}，实际为 {arr.shape}"
        ok = np.allclose(arr, want, rtol=question.rtol, atol=question.atol, equal_nan=False)
        return None if ok else f"数值与参考结果不符（容差 {question.tolerance_text()}）"
    # scalar
    if type(got) is list:
        return "应返回一个数，而不是数组"
    if type(got) not in (int, float):
        return "应返回一个数"
    if not math.isfinite(got) and got != want:
        return "返回了 nan 或 inf"
    ok = abs(got - want) <= question.atol + question.rtol * abs(want)
    return None if ok else f"数值与参考结果不符（容差 {question.tolerance_text()}）"
