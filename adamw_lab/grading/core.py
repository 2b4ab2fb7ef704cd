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

from adamw_lab.grading.wire import NotPlainData, decode_argument, to_plain  # noqa: F401  (re-exported)

# Statuses of one question, shown to students as-is.
PASSED = "通过"
FAILED = "未通过"
TODO = "未完成"


# Tolerances: a float64 question is checked at float64 precision (float32 work
# fails it, with a message that says so); a question that allows float32 is
# checked at float32 precision, whatever dtype the answer used.
FLOAT64_TOL = (1e-9, 1e-12)
FLOAT32_TOL = (1e-4, 1e-6)


@dataclass(frozen=True)
class Question:
    id: str                                   # stable id, "ex03.q2"
    points: int
    problem_ids: tuple[int, ...]              # the source's [@problem_id:...] it covers
    target: str                               # name of the function the student defines
    make_inputs: Callable[[np.random.Generator], tuple]   # positional arguments, fresh each call
    expected: Callable[..., Any]              # reference answer for those arguments
    hint: str                                 # Chinese, says where to look, never the answer
    float32: bool = False                     # float32 answers accepted (float32 tolerance)
    rtol: float | None = None                 # default: FLOAT32_TOL or FLOAT64_TOL
    atol: float | None = None
    cases: int = 3                            # random input sets per check
    fixed_inputs: tuple = field(default_factory=tuple)  # edge cases always tried first
    optimizer_ok: bool = False                # the task is to drive torch.optim (else: write the update)
    autograd_ok: bool = True                  # False: the gradient is to be derived by hand

    @property
    def exercise(self) -> str:
        return self.id.split(".")[0]

    @property
    def tolerance(self) -> tuple[float, float]:
        rtol, atol = FLOAT32_TOL if self.float32 else FLOAT64_TOL
        return (rtol if self.rtol is None else self.rtol, atol if self.atol is None else self.atol)

    def tolerance_text(self) -> str:
        rtol, atol = self.tolerance
        return f"rtol={rtol:g}, atol={atol:g}"

    def policy_text(self) -> str:
        """The dtype and tolerance sentence that the question's text in the notebook states."""
        rtol, atol = self.tolerance
        if rtol == 0 and atol == 0:
            return "返回整数；检查要求完全相等。"
        if self.float32:
            dtype = "数据类型：float32 或 float64 都可以（容差按 float32 的舍入误差设定）。"
        else:
            dtype = "数据类型：float64（输入是 float64 的 NumPy 数组；改用 float32 计算会因舍入误差而不通过）。"
        return dtype + f"检查的容差：`{self.tolerance_text()}`。"

    def draw_cases(self, rng: np.random.Generator) -> list[tuple]:
        return list(self.fixed_inputs) + [self.make_inputs(rng) for _ in range(self.cases)]


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


def expected_plain(value):
    """The reference answer as plain data with its structure: float, ndarray, or tuple."""
    if isinstance(value, tuple):
        return tuple(expected_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    return float(value)


def _close(got, want, rtol: float, atol: float) -> bool:
    return bool(np.all(np.abs(got - want) <= atol + rtol * np.abs(want)))


def _mismatch(question: Question, got, want) -> str | None:
    """None if ``got`` is within the question's tolerance; else why not (float32 round-off named)."""
    if not np.all(np.isfinite(got)):
        return "返回了 nan 或 inf"
    if _close(got, want, *question.tolerance):
        return None
    if not question.float32 and _close(got, want, *FLOAT32_TOL):
        return ("数值只在 float32 舍入误差的量级上与参考结果不同：这道题要求 float64"
                "（torch 张量请用 dtype=torch.float64，或者直接用 NumPy 计算）")
    return f"数值与参考结果不符（容差 {question.tolerance_text()}）"


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
        return _mismatch(question, arr, want)
    # scalar
    if type(got) is list:
        return "应返回一个数，而不是数组"
    if type(got) not in (int, float):
        return "应返回一个数"
    return _mismatch(question, np.float64(got), np.float64(want))
