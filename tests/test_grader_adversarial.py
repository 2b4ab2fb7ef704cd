"""Hostile and broken submissions (tests/adversarial/, made by make_adversarial.py).

All of them are graded in one batch, in the bubblewrap sandbox, together with
innocent ones.  Each one must get exactly the points its honest code earns and
its status, and none may change another's grade, leave a process behind, or
write outside its sandbox.
"""
from __future__ import annotations

import csv
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from adamw_lab.grading.grader import grade_many, safe_name

HERE = Path(__file__).resolve().parent / "adversarial"
sys.path.insert(0, str(HERE))
from make_adversarial import ESCAPE_MARKER, EXPECTED  # noqa: E402

# Names that once collided or broke the CSV, graded alongside (copies of the ex00 solution or stub).
EXTRA = {
    "class1/hw/ex00.ipynb": ("renamed_copy_of_solution.json", 8),
    "class2/hw/ex00.ipynb": ("student_stub.json", 0),
    "s01 hw.ipynb": ("renamed_copy_of_solution.json", 8),
    "s01_hw.ipynb": ("student_stub.json", 0),
    "=SUM(1,2)*cmd.ipynb": ("renamed_copy_of_solution.json", 8),
}


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    batch = tmp_path_factory.mktemp("batch")
    out = tmp_path_factory.mktemp("adversarial")
    for name in EXPECTED:
        shutil.copy(HERE / name, batch / name)
    for name, (source, _) in EXTRA.items():
        (batch / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / source, batch / name)
    (batch / "too_large.ipynb").write_bytes(b"{" + b" " * (21 * 2**20) + b"}")
    Path(ESCAPE_MARKER).unlink(missing_ok=True)
    paths = sorted(p for p in batch.rglob("*") if p.is_file())
    os.environ["ADAMW_LAB_TEST_SECRET"] = "must not reach student code"
    try:
        # 10 s per cell: honest cells stay far below it even on a loaded 2-core machine
        grade_many(paths, out, jobs=2, timeout=10, progress=False)
    finally:
        del os.environ["ADAMW_LAB_TEST_SECRET"]
    snapshot = (out / "grades.csv").read_bytes()
    time.sleep(6)  # longer than the detached writer waits
    return read_csv(out / "grades.csv"), out, snapshot


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adversarial_submission(rows, name):
    table, out, _ = rows
    score, statuses = EXPECTED[name]
    row = table[name]
    assert int(row["total"]) == score, row
    got = set(row["status"].split("+"))
    assert set(statuses) <= got, row
    if statuses == {"ok"}:
        assert got == {"ok"}, row
    assert "grader-error" not in got
    feedback = (out / "feedback" / f"{safe_name(name)}.md").read_text(encoding="utf-8")
    assert "得分" in feedback


def test_rows_are_unique_and_csv_cells_are_not_formulas(rows):
    table, out, _ = rows
    for name, (_, score) in EXTRA.items():
        key = "'" + name if name.startswith("=") else name
        assert int(table[key]["total"]) == score, table[key]
    assert len(table) == len(EXPECTED) + len(EXTRA) + 1
    feedback = list((out / "feedback").rglob("*.md"))
    assert len(feedback) == len(table)
    assert not any(line.startswith(("=", "+", "-", "@")) for line in (out / "grades.csv").read_text().splitlines())


def test_too_large_file(rows):
    table, _, _ = rows
    assert table["too_large.ipynb"]["status"] == "too-large"


def test_nothing_outlives_its_sandbox(rows):
    _, out, snapshot = rows
    assert not Path(ESCAPE_MARKER).exists()
    assert (out / "grades.csv").read_bytes() == snapshot
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert ESCAPE_MARKER.encode() not in cmdline.read_bytes()
        except OSError:
            pass
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
