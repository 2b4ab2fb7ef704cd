"""The batch grader on the real notebooks: solutions get full marks, student notebooks zero.

Also: the CSV layout, feedback files, skipping unchanged submissions on a rerun,
and the command line's answers to bad arguments.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adamw_lab.grading.bank import EXERCISES
from adamw_lab.grading.grader import grade_many

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("ex*.ipynb"))
STUDENTS = sorted((ROOT / "exercises").glob("ex*.ipynb"))


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade every solution (renamed: the file name must not matter) and every student notebook."""
    src = tmp_path_factory.mktemp("subs")
    paths = []
    for p in SOLUTIONS:
        paths.append(src / f"solution_{p.name}")
        shutil.copy(p, paths[-1])
    for p in STUDENTS:
        paths.append(src / f"student_{p.name}")
        shutil.copy(p, paths[-1])
    out = tmp_path_factory.mktemp("out")
    grade_many(paths, out, jobs=2, timeout=60, progress=False)
    return src, out, paths


def test_every_exercise_has_a_solution_and_a_student_notebook():
    assert [p.name for p in SOLUTIONS] == [p.name for p in STUDENTS]
    assert len(SOLUTIONS) == 10


def test_solutions_get_full_marks(graded):
    _, out, _ = graded
    rows = read_csv(out / "grades.csv")
    for p in SOLUTIONS:
        row = rows[f"solution_{p.name}"]
        assert row["status"] == "ok", (p.name, row)
        assert int(row["total"]) == int(row["max_total"]) > 0, (p.name, row)


def test_student_notebooks_get_zero(graded):
    _, out, _ = graded
    rows = read_csv(out / "grades.csv")
    for p in STUDENTS:
        row = rows[f"student_{p.name}"]
        assert row["status"] == "ok", (p.name, row)
        assert int(row["total"]) == 0 and int(row["max_total"]) > 0, (p.name, row)
        feedback = (out / "feedback" / f"student_{p.name}.md").read_text(encoding="utf-8")
        assert "未完成" in feedback and "通过：" not in feedback


def test_csv_has_one_column_per_question(graded):
    _, out, _ = graded
    with open(out / "grades.csv", encoding="utf-8") as f:
        header = next(csv.reader(f))
    ids = sorted(q.id for qs in EXERCISES.values() for q in qs)
    assert header == ["submission", "exercise", *ids, "total", "max_total", "status"]
    assert not list(out.glob(".tmp-*")) and not list((out / "feedback").glob(".tmp-*"))


def test_feedback_says_per_question_what_passed(graded):
    _, out, _ = graded
    text = (out / "feedback" / f"solution_{SOLUTIONS[3].name}").with_suffix(".ipynb.md").read_text(encoding="utf-8")
    for q in EXERCISES["ex03"]:
        assert f"{q.id}（{q.points}/{q.points} 分）通过" in text


def test_rerun_skips_unchanged_and_regrades_changed(graded, tmp_path):
    src, out, paths = graded
    before = {p.name: p.stat().st_mtime_ns for p in (out / ".state").iterdir()}
    changed = paths[-1]
    nb = json.loads(changed.read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "我的笔记"})
    changed.write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    grade_many(paths, out, jobs=2, timeout=60, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (out / ".state").iterdir()}
    regraded = {name for name in before if before[name] != after[name]}
    assert regraded == {changed.name + ".json"}
    assert len(read_csv(out / "grades.csv")) == len(paths)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "adamw_lab.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["grade", "--out", "OUT"], "required"),
    (["grade", "does_not_exist.ipynb", "--out", "OUT"], "no such file"),
    (["grade", "SUB", "--out", "OUT", "--jobs", "0"], "must be at least 1"),
    (["grade", "SUB", "--out", "OUT", "--timeout", "-3"], "must be positive"),
    (["grade", "SUB", "--out", "OUT", "--timeout", "soon"], "not a number"),
    (["grade", "SUB", "--out", "OUT", "--exercise", "ex42"], "unknown exercise"),
    (["grade", "SUB"], "--out"),
    (["grade", "SUB", "--out", "SUB"], "not a folder"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_nonzero_with_a_message(tmp_path, args, message):
    sub = tmp_path / "sub.ipynb"
    shutil.copy(STUDENTS[0], sub)
    args = [str(sub) if a == "SUB" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def test_cli_exits_zero_whatever_the_scores(tmp_path):
    sub = tmp_path / "mine.ipynb"
    shutil.copy(STUDENTS[0], sub)
    junk = tmp_path / "junk.ipynb"
    junk.write_text("not json")
    proc = run_cli("grade", str(sub), str(junk), "--out", str(tmp_path / "out"), "--jobs", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert rows["junk.ipynb"]["status"] == "not-a-notebook"
    assert rows["mine.ipynb"]["total"] == "0"
    assert (tmp_path / "out" / "feedback" / "junk.ipynb.md").exists()


def test_cache_key_holds_every_option(tmp_path):
    """A rerun with another --timeout, --memory, --seed or sandbox setting grades again."""
    sub = tmp_path / "junk.ipynb"
    sub.write_text("not json")
    out = tmp_path / "out"
    state = out / ".state" / "junk.ipynb.json"
    grade_many([sub], out, timeout=30, progress=False)
    stamp = state.stat().st_mtime_ns
    grade_many([sub], out, timeout=30, progress=False)
    assert state.stat().st_mtime_ns == stamp
    for option in ({"timeout": 31}, {"memory_mb": 2048}, {"seed": 3}, {"sandboxed": False}):
        grade_many([sub], out, **{"timeout": 30, **option}, progress=False)
        assert state.stat().st_mtime_ns != stamp, option
        stamp = state.stat().st_mtime_ns


def test_unsandboxed_grading_is_recorded(tmp_path):
    sub = tmp_path / "sol.ipynb"
    shutil.copy(SOLUTIONS[1], sub)
    grade_many([sub], tmp_path / "out", timeout=60, sandboxed=False, progress=False)
    row = read_csv(tmp_path / "out" / "grades.csv")["sol.ipynb"]
    assert row["status"] == "unsandboxed" and row["total"] == row["max_total"]
    assert "unsandboxed" in (tmp_path / "out" / "feedback" / "sol.ipynb.md").read_text(encoding="utf-8")


def test_cli_refuses_to_grade_without_a_sandbox(tmp_path):
    """No bwrap on the PATH: exit 2 with the fix, unless --no-sandbox is given."""
    sub = tmp_path / "junk.ipynb"
    sub.write_text("not json")
    env = {**os.environ, "PATH": str(tmp_path)}
    args = [sys.executable, "-m", "adamw_lab.cli", "grade", str(sub), "--out", str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "bubblewrap" in proc.stderr and "--no-sandbox" in proc.stderr
    proc = subprocess.run(args + ["--no-sandbox"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "unsandboxed" in (tmp_path / "out" / "grades.csv").read_text()
