"""Instant feedback in the notebook: ``check("ex00.q3", adamw_step)``.

The check runs in the notebook's own process (also in Colab), so it is a
help for the student, not the grade: the batch grader (``adamw-lab grade``)
never trusts it and recomputes everything in its own process.  It prints one
line: 通过, 未通过 with a hint, or 未完成 when the function is still a stub.
"""
from __future__ import annotations

import os

import numpy as np

from adamw_lab.grading.bank import QUESTIONS
from adamw_lab.grading.core import FAILED, PASSED, TODO, NotPlainData, compare, expected_plain, to_plain


def evaluate(question, func, rng) -> tuple[str, str]:
    """Run ``func`` on fresh inputs and return ``(status, message)``."""
    if func is None or not callable(func):
        return TODO, f"还没有定义函数 {question.target}。"
    for case in question.draw_cases(rng):
        args = tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in case)
        try:
            got = func(*args)
        except NotImplementedError:
            return TODO, "函数还没有实现。"
        except Exception as exc:  # the student's code raised: report its type, not a traceback
            return FAILED, f"函数运行时出错：{type(exc).__name__}: {str(exc)[:200]}"
        if got is None or got is Ellipsis:
            return TODO, "函数还没有返回结果（返回值是 None）。"
        try:
            plain = to_plain(got)
        except NotPlainData as exc:
            return FAILED, f"返回值必须是数、数组（NumPy 或 torch）或它们组成的元组：{exc}。"
        why = compare(question, plain, expected_plain(question.expected(*case)))
        if why:
            return FAILED, f"{why}。提示：{question.hint}"
    return PASSED, f"在 {len(question.draw_cases(rng))} 组输入（含固定的边界情形与新的随机输入）上与参考实现一致（容差 {question.tolerance_text()}）。"


def check(question_id: str, func=None) -> None:
    """Check the student's ``func`` for question ``question_id`` and print the verdict in Chinese."""
    question = QUESTIONS.get(question_id)
    if question is None:
        print(f"{question_id}：没有这道题（题号写错了？）")
        return
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    status, message = evaluate(question, func, rng)
    print(f"{question.id}（{question.points} 分）{status}：{message}")
