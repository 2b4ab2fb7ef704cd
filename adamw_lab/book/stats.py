"""Paired comparisons over seeds, the one statistics helper of Part II.

Two methods trained with the same seeds (same initialisation, same data
order) give paired results ``a[i]``, ``b[i]``.  :func:`paired_difference`
returns the mean of ``a - b`` with a Student-t confidence interval, and
:meth:`Paired.verdict` turns the interval into the book's verdict on a claim
"``a`` is better than ``b``":

* 支持 (supported): the whole interval lies on the claimed side of 0;
* 不支持 (not supported): the whole interval lies on the other side;
* 无法区分 (indistinguishable): the interval contains 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

VERDICTS = ("支持", "不支持", "无法区分")


@dataclass(frozen=True)
class Paired:
    """Mean paired difference ``a - b`` with its confidence interval ``[low, high]``."""

    diff: float
    low: float
    high: float
    n: int
    level: float

    def verdict(self, lower_is_better: bool = True) -> str:
        """Verdict on the claim "``a`` is better than ``b``" (better = lower by default, e.g. error)."""
        better, worse = (self.high < 0, self.low > 0) if lower_is_better else (self.low > 0, self.high < 0)
        return "支持" if better else "不支持" if worse else "无法区分"

    def text(self, digits: int = 2) -> str:
        """``"-1.23 [-2.00, -0.46]"``: the difference and its interval, for the prose."""
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.diff + 0.0)} [{f.format(self.low + 0.0)}, {f.format(self.high + 0.0)}]"


def paired_difference(a, b, level: float = 0.95) -> Paired:
    """Mean of ``a - b`` over paired seeds with a ``level`` Student-t interval.

    ``a`` and ``b`` are 1-D sequences of equal length n >= 2 (one value per
    seed, the same seeds in the same order); NaN is an error, not a value to
    skip silently.
    """
    from scipy.stats import t as student_t

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D with one value per seed and the same length; got shapes "
                         f"{a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("a paired interval needs at least 2 seeds")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b contain NaN or inf: drop or fix those runs explicitly")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    d = a - b
    n = len(d)
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    mean = float(d.mean())
    return Paired(mean, mean - half, mean + half, n, level)
