"""Graded exercises (Part III, 动手实践): question bank, notebook checks and the batch grader.

- ``check(question_id, func)``: instant feedback inside an exercise notebook;
- ``bank.QUESTIONS``: every question with its reference answer;
- ``grader``: ``adamw-lab grade`` runs submissions in sandboxed kernels.
"""
from adamw_lab.grading.checks import check

__all__ = ["check"]
