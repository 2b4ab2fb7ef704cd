"""Hostile and broken submissions (tests/adversarial/, made by make_adversarial.py).

Each one must get exactly the points its honest code earns and a clear status,
and none may stop the others from being graded.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest

from adamw_lab.grading.grader import grade_many

HERE = Path(__file__).resolve().parent / "adversarial"
sys.path.insert(0, str(HERE))
from make_adversarial import EXPECTED  # noqa: E402


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("adversarial")
    big = tmp_path_factory.mktemp("big") / "too_large.ipynb"
    big.write_bytes(b"{" + b" " * (21 * 2**20) + b"}")
    paths = [HERE / name for name in EXPECTED] + [big]
    os.environ["ADAMW_LAB_TEST_SECRET"] = "must not reach student code"
    try:
        # 10 s per cell: honest cells stay far below it even on a loaded 2-core machine
        # (a first torch.optim step imports torch._dynamo: seconds when cold)
        grade_many(paths, out, jobs=2, timeout=10, progress=False)
    finally:
        del os.environ["ADAMW_LAB_TEST_SECRET"]
    return read_csv(out / "grades.csv"), out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adversarial_submission(rows, name):
    table, out = rows
    score, statuses = EXPECTED[name]
    row = table[name]
    assert int(row["total"]) == score, row
    got = set(row["status"].split("+"))
    assert set(statuses) <= got, row
    assert "grader-error" not in got
    feedback = (out / "feedback" / f"{name}.md").read_text(encoding="utf-8")
    assert "得分" in feedback


def test_too_large_file(rows):
    table, _ = rows
    assert table["too_large.ipynb"]["status"] == "too-large"


def test_no_stray_kernel_or_temp_files(rows):
    _, out = rows
    assert not list(out.rglob(".tmp-*"))


def test_wrong_exercise_and_missing_metadata_with_exercise_option(tmp_path):
    paths = [HERE / "ex01_submitted_for_ex00.json", HERE / "no_metadata.json"]
    grade_many(paths, tmp_path, jobs=2, timeout=30, exercise="ex00", progress=False)
    table = read_csv(tmp_path / "grades.csv")
    wrong = table["ex01_submitted_for_ex00.json"]
    assert wrong["status"] == "wrong-exercise" and wrong["total"] == "0" and wrong["max_total"] == "8"
    lost = table["no_metadata.json"]
    assert lost["status"] == "no-exercise-metadata" and lost["total"] == "8"
    text = (tmp_path / "feedback" / "no_metadata.json.md").read_text(encoding="utf-8")
    assert "metadata.adamw_lab.exercise" in text
