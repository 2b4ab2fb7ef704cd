"""Text rules of the book: links instead of 上一章/下一章, every bibliography entry
cited, no raw problem ids of the source in the chapters."""
import json
import re
from pathlib import Path

import pytest

from adamw_lab.grading.bank import QUESTIONS

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
# every page a reader sees: the chapters and appendices under book/ and the exercises
PAGES = sorted([*BOOK.rglob("*.md"), *BOOK.rglob("*.ipynb"), *(ROOT / "exercises").glob("*.ipynb")])
PAGES = [p for p in PAGES if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts]
# the chapters: notebooks under book/ and the introduction (the instructor guide and the
# exercises map questions to the source's problem ids on purpose)
CHAPTERS = [p for p in PAGES if p.parent != ROOT / "exercises" and (p.suffix == ".ipynb" or p.name == "intro.md")]
PROBLEM_IDS = sorted({str(pid) for q in QUESTIONS.values() for pid in q.problem_ids})


def prose(path):
    """The text a reader sees as prose: a markdown file, or a notebook's markdown cells."""
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def cited_keys(text):
    """Keys of {cite}`a,b`, {cite:p}`a`, {cite:t}`a` … in a text."""
    return {k.strip() for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for k in group.split(",")}


def bib_keys():
    return re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(encoding="utf-8"), flags=re.M)


def relative_chapter_words(text):
    return re.findall(r".{0,20}(?:上一章|下一章).{0,20}", text)


def raw_problem_ids(text):
    return [m.group(0) for pid in PROBLEM_IDS for m in re.finditer(rf".{{0,20}}(?<!\d){pid}(?!\d).{{0,5}}", text)]


def test_the_rules_find_what_they_look_for():
    # each rule catches the pattern it is written for, and only that
    assert cited_keys("见 {cite}`a2019x, b2020y` 与 {cite:p}`c1`，不是 `d`") == {"a2019x", "b2020y", "c1"}
    assert relative_chapter_words("这与上一章的热图一致") and not relative_chapter_words("{doc}`02_adamw` 的热图")
    pid = PROBLEM_IDS[0]
    assert raw_problem_ids(f"- **迁移学习（{pid}）：不支持。**")
    assert not raw_problem_ids(f"数字 1{pid} 不算")
    assert len(PROBLEM_IDS) >= 10 and len(CHAPTERS) >= 5 and len(bib_keys()) >= 10


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_previous_or_next_chapter(path):
    """Refer to a chapter with {doc}`...` (a link that survives reordering), not 上一章/下一章."""
    assert relative_chapter_words(prose(path)) == []


def test_every_bibliography_entry_is_cited():
    cited = set().union(*(cited_keys(prose(p)) for p in PAGES))
    keys = bib_keys()
    assert len(keys) == len(set(keys)), "duplicate keys in book/references.bib"
    uncited = sorted(set(keys) - cited)
    assert uncited == [], f"cite these where they are used, or remove them from book/references.bib: {uncited}"
    unknown = sorted(cited - set(keys))
    assert unknown == [], f"cited but missing from book/references.bib: {unknown}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_raw_problem_ids_in_chapters(path):
    """A chapter names the claim it tests, not the source's numeric problem id."""
    assert raw_problem_ids(prose(path)) == []


PART_ONE = sorted((BOOK / "principles").glob("*.ipynb"))


@pytest.mark.parametrize("path", PART_ONE, ids=lambda p: p.name)
def test_part_one_chapters_end_with_exercises(path):
    """Every chapter of 原理与机制 ends with 练习: 3–5 numbered questions and a link to a graded exercise."""
    text = prose(path)
    assert "\n## 练习" in text
    exercises = text.rsplit("\n## 练习", 1)[1]
    questions = re.findall(r"^\d+\. ", exercises, flags=re.M)
    assert 3 <= len(questions) <= 5
    linked = re.findall(r"\{doc\}`\.\./\.\./exercises/(ex\d\d_\w+)`", exercises)
    assert linked and all((ROOT / "exercises" / f"{name}.ipynb").exists() for name in linked)
