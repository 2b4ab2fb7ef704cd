"""The checks separate right from wrong every time (issue 13, deliver 3).

For every question, each plausible mistake of ``tests/grading_mistakes.py``
must fail the check on all of 200 seeds, and a correct answer written as a
student would must pass on all of them (in float32 too where the question
allows float32).  Run with ``-s`` to see the table of pass rates.
"""
from __future__ import annotations

import numpy as np
import pytest

from adamw_lab.grading.bank import QUESTIONS
from adamw_lab.grading.checks import evaluate
from adamw_lab.grading.core import PASSED
from grading_mistakes import CORRECT, MISTAKES, f32

SEEDS = 200


def pass_rate(question, func) -> float:
    return sum(evaluate(question, func, np.random.default_rng(seed))[0] == PASSED for seed in range(SEEDS)) / SEEDS


def test_every_question_has_at_least_three_mistakes():
    assert sorted(MISTAKES) == sorted(QUESTIONS) == sorted(CORRECT)
    assert all(len(m) >= 3 for m in MISTAKES.values())


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_mistakes_always_fail_and_correct_answers_always_pass(qid):
    q = QUESTIONS[qid]
    rates = {"correct": pass_rate(q, CORRECT[qid])}
    if q.float32:
        rates["correct, float32"] = pass_rate(q, f32(CORRECT[qid]))
    for name, func in MISTAKES[qid].items():
        rates[name] = pass_rate(q, func)
    print(f"\n{qid} ({'float32 ok' if q.float32 else 'float64'}): " + "; ".join(f"{k} {v:.0%}" for k, v in rates.items()))
    assert all(v == 1.0 for k, v in rates.items() if k.startswith("correct")), rates
    assert all(v == 0.0 for k, v in rates.items() if not k.startswith("correct")), rates


@pytest.mark.parametrize("qid", [q.id for q in QUESTIONS.values() if not q.float32 and q.tolerance != (0.0, 0.0)])
def test_float32_work_on_a_float64_question_is_told_so(qid):
    """Off by float32 round-off only: the feedback names the dtype (on a simple one-step input)."""
    q = QUESTIONS[qid]

    def almost(*args):
        want = q.expected(*args)
        bump = lambda x: np.asarray(x, dtype=np.float64) * (1 + 3e-7)  # noqa: E731
        return tuple(bump(w) for w in want) if isinstance(want, tuple) else bump(want)

    status, message = evaluate(q, almost, np.random.default_rng(0))
    assert status != PASSED and "float32" in message and "float64" in message, message
