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


class Verdict(str):
    """A verdict word whose ``repr`` is the word itself, so ``glue`` shows 支持, not '支持'."""

    def __repr__(self) -> str:
        return str(self)


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
        return Verdict("支持" if better else "不支持" if worse else "无法区分")

    def text(self, digits: int = 2) -> str:
        """``"-1.23 [-2.00, -0.46]"``: the difference and its interval, for the prose."""
        f = f"{{:.{digits}f}}"
        return f"{f.format(self.diff + 0.0)} [{f.format(self.low + 0.0)}, {f.format(self.high + 0.0)}]"


def bootstrap(statistic, samples, level: float = 0.95, n_boot: int = 1000, seed: int = 0):
    """Percentile bootstrap over seeds: ``(estimate, low, high)`` of ``statistic(samples)``.

    ``samples`` has one row per seed (axis 0); each replicate resamples the
    rows with replacement and applies ``statistic`` to the resampled array.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim < 1 or len(x) < 2:
        raise ValueError("bootstrap needs samples with at least 2 seeds along axis 0")
    rng = np.random.default_rng(seed)
    reps = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)], dtype=np.float64)
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    return float(statistic(x)), float(lo), float(hi)


def verdict_towards(low: float, high: float, claimed: float, alternative: float) -> str:
    """Verdict on "the quantity equals ``claimed``" against ``alternative`` from an interval.

    支持 when the interval holds ``claimed`` and excludes ``alternative``;
    不支持 when it excludes ``claimed``; 无法区分 when it holds both.
    """
    if not low <= claimed <= high:
        return Verdict("不支持")
    return Verdict("无法区分" if low <= alternative <= high else "支持")


def mean_interval(diff, level: float = 0.95):
    """``(mean, low, high)`` of per-seed differences already taken (``a - b`` or a
    per-seed slope): :func:`paired_difference` of ``diff`` against 0."""
    d = np.asarray(diff, dtype=np.float64).ravel()
    p = paired_difference(d, np.zeros_like(d), level)
    return p.diff, p.low, p.high


def interval_verdict(low: float, high: float, if_positive: str, if_negative: str) -> str:
    """The verdict an interval allows, worded for the claim at hand: ``if_positive``
    when it lies above 0, ``if_negative`` when below, and "no difference detected"
    when it holds 0."""
    if low > 0:
        return Verdict(if_positive)
    if high < 0:
        return Verdict(if_negative)
    return Verdict("区间含 0：未测出差别")


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
