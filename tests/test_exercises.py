"""Part III: the exercise notebooks, their metadata, the question bank and the notebook checks."""
from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from adamw_lab.grading import check
from adamw_lab.grading.bank import EXERCISES, QUESTIONS
from adamw_lab.grading.checks import evaluate
from adamw_lab.grading.core import FAILED, PASSED, TODO, NotPlainData, compare, to_plain, validate_plain

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_exercises as generate  # noqa: E402  (a repository tool, not installed)
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("ex*.ipynb"))
STUDENTS = sorted((ROOT / "exercises").glob("ex*.ipynb"))

# Every [@problem_id:...] of the two source texts (引言/第一章 and 第二章).
SOURCE_PROBLEM_IDS = {3096561, 3096538, 3096524, 3096560, 3096571, 3096575, 3096562, 3096531, 3096574,
                      3096513, 3096487, 3096558, 3161372, 3096579, 3096556, 3096527, 3096511, 3096515,
                      3096479, 3096537}


def roles(nb, role):
    return [c for c in nb.cells if c.metadata.get("adamw_lab", {}).get("role") == role]


def test_every_problem_id_is_covered():
    covered = {pid for q in QUESTIONS.values() for pid in q.problem_ids}
    assert covered == SOURCE_PROBLEM_IDS


def test_ten_exercises_with_stable_ids():
    assert sorted(EXERCISES) == [f"ex{i:02d}" for i in range(10)]
    for qid, q in QUESTIONS.items():
        assert re.fullmatch(r"ex\d\d\.q\d+", qid) and q.points > 0


def test_student_notebooks_are_up_to_date():
    """Edit exercises/solutions/*.ipynb, then run `python tools/make_exercises.py` to regenerate."""
    assert generate.stale(ROOT) == []


@pytest.mark.parametrize("path", SOLUTIONS + STUDENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_metadata_names_exercise_questions_and_problem_ids(path):
    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata["adamw_lab"]
    ex = meta["exercise"]
    assert path.name.startswith(ex + "_")
    assert meta["variant"] == ("solution" if path.parent.name == "solutions" else "student")
    assert [(q["id"], q["points"], q["function"], tuple(q["problem_ids"])) for q in meta["questions"]] == \
        [(q.id, q.points, q.target, q.problem_ids) for q in EXERCISES[ex]]
    # one instruction, one answer and one check cell per question, in that order
    for q in EXERCISES[ex]:
        kinds = [c.metadata["adamw_lab"]["role"] for c in nb.cells
                 if c.metadata.get("adamw_lab", {}).get("question") == q.id]
        assert kinds == ["question", "answer", "check"], (q.id, kinds)
        heading = next(c for c in roles(nb, "question") if c.metadata["adamw_lab"]["question"] == q.id)
        assert q.id in heading.source and f"{q.points} 分" in heading.source


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_checks_all_pass_in_stored_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in roles(nb, "check"):
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "通过：" in text and "未通过" not in text, text


@pytest.mark.parametrize("path", STUDENTS, ids=lambda p: p.name)
def test_student_notebooks_have_stubs_and_report_unfinished(path):
    nb = nbformat.read(path, as_version=4)
    for cell in roles(nb, "answer"):
        assert "raise NotImplementedError" in cell.source
        assert "SOLUTION" not in cell.source
    for cell in nb.cells:
        assert "BEGIN SOLUTION" not in cell.source
    for cell in roles(nb, "check"):
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "未完成" in text, text


def test_strip_code_keeps_indentation():
    src = "def f(x):\n    \"\"\"Doc.\"\"\"\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n"
    assert generate.strip_code(src) == 'def f(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError'


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_reference_passes_and_stub_is_unfinished(qid):
    q = QUESTIONS[qid]
    rng = np.random.default_rng(1)
    assert evaluate(q, q.expected, rng)[0] == PASSED

    def stub(*args):
        raise NotImplementedError

    assert evaluate(q, stub, rng)[0] == TODO
    assert evaluate(q, lambda *a: ..., rng)[0] == TODO


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_a_hard_coded_answer_fails(qid):
    """The answer for one input set, returned for every input: the next draw catches it."""
    q = QUESTIONS[qid]
    frozen = q.expected(*q.make_inputs(np.random.default_rng(123)))
    status, message = evaluate(q, lambda *a: frozen, np.random.default_rng(7))
    assert status == FAILED, message


@pytest.mark.parametrize("qid", sorted(QUESTIONS))
def test_feedback_never_contains_the_answer(qid):
    q = QUESTIONS[qid]
    rng = np.random.default_rng(5)

    def off_by_a_bit(*args):
        want = q.expected(*args)
        if isinstance(want, tuple):
            return tuple(np.asarray(w) + 0.5 for w in want)
        return np.asarray(want) + 0.5

    status, message = evaluate(q, off_by_a_bit, rng)
    assert status == FAILED
    assert not re.search(r"\d\.\d{3,}", message.replace(q.tolerance_text(), "")), message  # no printed floats


def test_check_prints_chinese_verdicts():
    q = QUESTIONS["ex03.q2"]
    for func, word in ((q.expected, "通过"), (lambda lr, wd: (1.0, 2.0), "未通过"), (None, "未完成")):
        buf = io.StringIO()
        with redirect_stdout(buf):
            check("ex03.q2", func)
        assert f"）{word}：" in buf.getvalue()
    buf = io.StringIO()
    with redirect_stdout(buf):
        check("ex99.q1", q.expected)
    assert "没有这道题" in buf.getvalue()


def test_plain_data_only():
    class Anything:
        def __eq__(self, other):
            return True

    for bad in (Anything(), None, True, "1.0", {"a": 1.0}, np.array(["a"]), [1.0, Anything()]):
        with pytest.raises(NotPlainData):
            to_plain(bad)
    for bad in (True, None, "x", {"a": 1}, [1, [2, "3"]]):
        with pytest.raises(NotPlainData):
            validate_plain(bad)
    assert to_plain((np.float32(1.5), np.arange(3), [2, 3.0])) == [1.5, [0.0, 1.0, 2.0], [2.0, 3.0]]


def test_compare_checks_shape_and_tuple_length():
    q = QUESTIONS["ex00.q1"]
    want = (np.zeros(3), np.zeros(3))
    assert compare(q, [[0.0] * 3, [0.0] * 3], want) is None
    assert "形状" in compare(q, [[0.0] * 2, [0.0] * 3], want)
    assert "元组" in compare(q, [[0.0] * 3], want)


def test_instructor_guide_table_matches_the_question_bank():
    text = (ROOT / "book" / "instructor_guide.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(ex\d\d)` \| [^|]+ \| (\d+) \| (\d+) \| ([\d, ]+|—) \|$", text, re.M)
    assert [r[0] for r in rows] == sorted(EXERCISES)
    for ex, n, points, ids in rows:
        qs = EXERCISES[ex]
        assert int(n) == len(qs) and int(points) == sum(q.points for q in qs)
        # Part IV (ex08, ex09) goes beyond the source: no problem ids, shown as —
        want = list(dict.fromkeys(p for q in qs for p in q.problem_ids))
        assert ([] if ids == "—" else [int(i) for i in ids.split(",")]) == want


@pytest.mark.parametrize("path", SOLUTIONS + STUDENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_question_states_its_dtype_and_tolerance(path):
    """The sentence the check's tolerance comes from, word for word, in the question's text."""
    nb = nbformat.read(path, as_version=4)
    for cell in roles(nb, "question"):
        q = QUESTIONS[cell.metadata["adamw_lab"]["question"]]
        assert q.policy_text() in cell.source, (q.id, q.policy_text())


@pytest.mark.parametrize("path", SOLUTIONS + STUDENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_relative_chapter_references_and_no_answer_key_in_graded_cells(path):
    """上一章/下一章 mean nothing in a notebook opened alone; the grader's kernel has no adamw_lab.reference."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        assert "上一章" not in cell.source and "下一章" not in cell.source, cell.source[:80]
        if cell.cell_type == "code" and cell.metadata.get("adamw_lab", {}).get("role") not in ("demo", "check"):
            assert "reference" not in cell.source and "theory" not in cell.source, cell.source[:200]


def test_exercise_formulas_are_the_theory_module_s():
    """One definition per formula: ex02.q3 and ex04.q4 are judged by adamw_lab.theory itself."""
    from adamw_lab import reference, theory

    v_hat = np.array([1e-16, 1e-4, 1.0])
    assert np.array_equal(QUESTIONS["ex02.q3"].expected(v_hat, 0.5, 1e-8), theory.effective_prior_precision(0.5, v_hat, 1e-8))
    args = (1.0, 1.0, 20, 30, 1e-2, 0.5)
    want = tuple(float(theory.overshoot_steps(theory.flip_trajectory(step, 1.0, 20, 50, w0=1.0, lr=1e-2, weight_decay=0.5), 20))
                 for step in (reference.adamw_step, reference.adam_l2_step))
    assert QUESTIONS["ex04.q4"].expected(*args) == want
