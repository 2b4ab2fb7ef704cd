"""Batch grader: ``adamw-lab grade SUBMISSION.ipynb... --out DIR``.

For each submission, in a worker process of its own pool slot:

1. read the file as a notebook and find the exercise in its metadata
   (``metadata.adamw_lab.exercise``), never in the file name;
2. start a kernel in a bubblewrap sandbox (:mod:`adamw_lab.grading.sandbox`)
   and run the student's code cells one by one, each with a timeout, all of
   them within one time budget; a cell that raises, hangs or kills the kernel
   is recorded, the kernel is restarted and the cells that worked are replayed;
3. for each question, send the kernel inputs drawn here and ask it to call the
   student's function on them and print what it returned as JSON (the code
   that does this, :mod:`adamw_lab.grading.wire`, is sent as text at call time);
4. check that JSON is plain data (numbers and lists) and compare it, here, with
   the answer computed from :mod:`adamw_lab.reference` / :mod:`adamw_lab.theory`.

Student code runs only in the sandbox, which holds no answer key.  The
notebook's own check cells and the demonstration cells (``role: demo``) are
not run: nothing the kernel says about itself is trusted, only the numbers its
functions return for inputs it has not seen before.  A reply that is forged,
malformed or too large scores that question 0 with a reason.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from adamw_lab.grading import scan
from adamw_lab.grading.bank import EXERCISES, QUESTIONS
from adamw_lab.grading.core import (FAILED, PASSED, TODO, NotPlainData, compare, encode_argument,
                                    expected_plain, validate_plain)

MAX_FILE_BYTES = 20 * 2**20
MAX_REPLY_BYTES = 2_000_000
MAX_RESTARTS = 3
MAX_ATTEMPTS = 3            # a submission whose worker process died (or whose pool broke) is tried again
METADATA_KEY = "adamw_lab"
SKIPPED_ROLES = ("check", "demo")

# What each status means, for the feedback files and the instructor guide.
STATUS_TEXT = {
    "ok": "正常评分。",
    "not-a-notebook": "文件不是可读的 Jupyter notebook（JSON 损坏或格式不对），无法评分。",
    "too-large": f"文件超过 {MAX_FILE_BYTES // 2**20} MB，未评分。",
    "no-exercise-metadata": "notebook 缺少练习元数据 metadata.adamw_lab.exercise：请从课程发布的练习 notebook 开始作答（改文件名没关系，但不要新建空白 notebook 再粘贴代码），或请老师用 --exercise 指定练习。",
    "unknown-exercise": "元数据里的练习编号不存在。",
    "wrong-exercise": "这份 notebook 属于另一道练习（与 --exercise 指定的不同）。",
    "cell-error": "有单元格运行时报错；只有依赖它的题目受影响。",
    "cell-timeout": "有单元格超时被中断；只有依赖它的题目受影响。",
    "kernel-died": "有单元格让内核崩溃（例如内存超限或退出进程）；内核已重启，其余单元格照常运行。",
    "output-truncated": "输出过多，只保留了开头部分。",
    "time-budget": "整份 notebook 的运行时间（包括内核重启后的重放）超出上限，或内核崩溃重启的次数太多，其余单元格未运行。",
    "bad-reply": "有题目的返回结果被伪造、格式不对或过大；这些题记 0 分。",
    "uses-reference": "作答用到了参考实现或现成的库实现（adamw_lab.reference、torch.optim、自动求导等），而这道题要求自己写；该题记 0 分，请老师核查。",
    "shell-refused": "没有沙箱时不运行 shell 命令和单元格魔法命令（!、%%bash 等）；这些单元格被跳过。",
    "unsandboxed": "评分时没有使用沙箱（教师用 --no-sandbox 明确要求）：学生代码能读写运行评分的用户能读写的文件。",
    "grader-error": "评分程序自身出错（不是学生的问题）；请把反馈文件交给课程维护者。",
}

# Runs in the kernel: call the student's function on the grader's inputs, send back plain data.
# WIRE is the source of adamw_lab/grading/wire.py; nothing here knows an answer.
EVAL_HARNESS = r"""
def __adamw_lab_eval(wire_source, target, cases, nonce):
    import json
    wire = {}
    exec(compile(wire_source, "<adamw-lab wire>", "exec"), wire)
    out = []
    func = globals().get(target)
    for case in json.loads(cases):
        if func is None:
            out.append({"missing": True})
            continue
        try:
            got = func(*[wire["decode_argument"](a) for a in case])
            if got is None or got is Ellipsis:
                out.append({"todo": True})
            else:
                out.append({"value": wire["to_plain"](got)})
        except NotImplementedError:
            out.append({"todo": True})
        except wire["NotPlainData"] as exc:
            out.append({"error": "NotPlainData: " + str(exc)[:200]})
        except Exception as exc:  # not KeyboardInterrupt: a timeout is reported as one
            out.append({"error": type(exc).__name__ + ": " + str(exc)[:200]})
    print(nonce + json.dumps(out) + nonce)
__adamw_lab_eval(%(wire)r, %(target)r, %(cases)r, %(nonce)r)
del __adamw_lab_eval
"""
WIRE_SOURCE = (Path(__file__).with_name("wire.py")).read_text(encoding="utf-8")


@dataclass
class QuestionResult:
    id: str
    points: int
    score: int
    status: str            # 通过 / 未通过 / 未完成
    message: str


@dataclass
class Result:
    name: str
    path: str
    exercise: str = ""
    statuses: list[str] = field(default_factory=list)
    questions: list[QuestionResult] = field(default_factory=list)
    cell_log: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0

    @property
    def total(self) -> int:
        return sum(q.score for q in self.questions)

    @property
    def max_total(self) -> int:
        return sum(q.points for q in EXERCISES.get(self.exercise, []))

    @property
    def status(self) -> str:
        return "+".join(self.statuses) if self.statuses else "ok"

    def add_status(self, status: str) -> None:
        if status not in self.statuses:
            self.statuses.append(status)


def grader_version() -> str:
    """Hash of everything that can change a score: the grading code, the answer key, the sandbox's package."""
    from adamw_lab.grading.sandbox import site_digest

    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    for name in ("reference.py", "theory.py"):
        digest.update((Path(__file__).parents[1] / name).read_bytes())
    digest.update(site_digest().encode())
    return digest.hexdigest()[:16]


# --- one submission ------------------------------------------------------------------------

def _extract(stdout: str, nonce: str):
    """The text between the first two nonces in the kernel's stdout, or None."""
    parts = stdout.split(nonce)
    if len(parts) < 3:
        return None
    return parts[1]


def _clean(text: str) -> str:
    """Text that can be sent and written: lone surrogates (Jupyter opens them) become U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8") if isinstance(text, str) else ""


@dataclass
class Cell:
    number: int        # 1-based among the notebook's code cells, as the student counts them
    source: str
    question: str      # the question of an answer cell, or ""
    role: str          # "answer", "check", "demo", ... or ""
    after: str         # the last question heading above it, or ""

    def label(self) -> str:
        first = next((line.strip() for line in self.source.splitlines() if line.strip()), "")[:60]
        where = (f"{self.question} 的作答单元格" if self.role == "answer" and self.question else
                 f"{self.after} 之后的单元格" if self.after else "第一道题之前的单元格")
        return f"{where}（第 {self.number} 个代码单元格，开头是“{first}”）"


def _cells(nb: dict) -> list[Cell]:
    cells, after, number = [], "", 0
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict):
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        info = meta.get(METADATA_KEY) if isinstance(meta.get(METADATA_KEY), dict) else {}
        question = info.get("question") if isinstance(info.get("question"), str) else ""
        role = info.get("role") if isinstance(info.get("role"), str) else ""
        if cell.get("cell_type") == "markdown" and role == "question" and question:
            after = question
        if cell.get("cell_type") != "code":
            continue
        number += 1
        source = cell.get("source", "")
        source = "".join(map(str, source)) if isinstance(source, list) else str(source)
        cells.append(Cell(number, _clean(source), question, role, after))
    return cells


def read_submission(path: Path, result: Result, exercise_option: str | None) -> dict | None:
    """The notebook as a dict, with ``result.exercise`` set; None (and a status) if it cannot be graded."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            result.add_status("too-large")
            return None
        nb = json.loads(path.read_bytes().decode("utf-8-sig"))
        if isinstance(nb, dict) and "worksheets" in nb and "cells" not in nb:  # nbformat 3: Jupyter upgrades it
            import nbformat

            nb = json.loads(nbformat.writes(nbformat.reads(json.dumps(nb), as_version=4)))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no cells")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        result.add_status("not-a-notebook")
        result.cell_log.append(f"读取失败：{type(exc).__name__}")
        return None
    meta = nb.get("metadata", {})
    info = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    exercise = info.get("exercise") if isinstance(info, dict) else None
    if not isinstance(exercise, str):
        result.add_status("no-exercise-metadata")
        if not exercise_option:
            return None
        exercise = exercise_option
    if exercise not in EXERCISES:
        result.add_status("unknown-exercise")
        result.exercise = ""
        return None
    if exercise_option and exercise != exercise_option:
        result.add_status("wrong-exercise")
        result.exercise = exercise_option
        return None
    result.exercise = exercise
    return nb


def _cell_message(cell: Cell, run, timeout: float) -> str:
    """One line of the feedback's 运行记录 about a cell that did not run cleanly."""
    label = cell.label()
    if run.status == "error":
        return f"{label}报错：{run.error}"
    if run.status == "timeout" and not run.killed:
        return f"{label}运行超过 {timeout:g} 秒，已中断；后面的单元格照常运行。"
    if run.status == "timeout":
        return f"{label}运行超过 {timeout:g} 秒且不响应中断，已强制结束内核；重启后重放了之前成功的单元格。"
    if run.error:
        return f"{label}破坏了内核的通信；重启内核后重放了之前成功的单元格，这个单元格不再运行。"
    return f"{label}让内核退出或崩溃（例如 os._exit、段错误）；重启后重放了之前成功的单元格。"


def _judge(question, raw: str | None, cases, run=None) -> QuestionResult:
    """Score one question from the kernel's reply; a bad reply is that question's 0, never an error."""
    def res(status, message):
        return QuestionResult(question.id, question.points, question.points if status == PASSED else 0, status, message)

    if raw is None:
        if run is not None and run.status == "timeout":
            return res(FAILED, "调用你的函数时超时（死循环，或计算太慢）。")
        if run is not None and run.status == "died":
            return res(FAILED, "调用你的函数时内核崩溃或退出了。")
        return res(FAILED, "没有得到函数的返回结果（输出被截断，或评分用的输出被代码干扰）。")
    if len(raw) > MAX_REPLY_BYTES:
        return res(FAILED, "返回结果过大，无法评分。")
    try:
        answers = validate_plain_outer(json.loads(raw), len(cases))
    except (ValueError, NotPlainData, RecursionError):
        return res(FAILED, "评分得到的返回结果格式不对（可能被代码改写或伪造），这道题记 0 分。")
    for answer, case in zip(answers, cases):
        if answer.get("missing"):
            return res(TODO, f"没有找到函数 {question.target}（名字写错了，或定义它的单元格出错）。")
        if answer.get("todo"):
            return res(TODO, "函数还没有实现。")
        if "error" in answer and answer["error"].startswith("NotPlainData"):
            return res(FAILED, "返回值必须是数、数组（NumPy 或 torch）或它们组成的元组，不能是其他对象。")
        if "error" in answer:
            return res(FAILED, f"函数运行时出错：{answer['error'][:200]}")
        try:
            got = validate_plain(answer.get("value"))
        except (NotPlainData, RecursionError) as exc:
            return res(FAILED, f"返回值必须是数、数组或它们组成的元组：{exc}")
        why = compare(question, got, expected_plain(question.expected(*case)))
        if why:
            return res(FAILED, f"{why}。提示：{question.hint}")
    return res(PASSED, f"在 {len(cases)} 组输入（固定的边界情形与新的随机输入）上与参考实现一致（容差 {question.tolerance_text()}）。")


def validate_plain_outer(data, n: int) -> list[dict]:
    """The harness's reply: a list of n dicts with one known key each."""
    if type(data) is not list or len(data) != n:
        raise NotPlainData("reply has the wrong shape")
    for item in data:
        if type(item) is not dict or len(item) != 1 or next(iter(item)) not in ("missing", "todo", "error", "value"):
            raise NotPlainData("reply has the wrong shape")
        if "error" in item and type(item["error"]) is not str:
            raise NotPlainData("reply has the wrong shape")
    return data


def library_uses(question, sources: list[str]) -> list[str]:
    """What the answer to ``question`` uses that the question asks the student to write."""
    forbidden = scan.ANSWER_KEY + (() if question.optimizer_ok else scan.OPTIMIZERS)
    forbidden += () if question.autograd_ok else scan.AUTOGRAD
    methods = () if question.autograd_ok else scan.AUTOGRAD_METHODS
    return scan.forbidden_uses(sources, question.target, forbidden, methods)


def _runs_shell(source: str) -> bool:
    """Does the cell use IPython's shell escapes or magics (``!ls``, ``%%bash``, ``%run``...)?"""
    return "get_ipython()" in scan.to_python(source) and "get_ipython()" not in unicodedata.normalize("NFKC", source)


def grade_one(path: str, *, name: str, exercise: str | None = None, timeout: float = 60.0,
              memory_mb: int = 3072, seed: int | None = None, sandboxed: bool = True) -> dict:
    """Grade one submission; returns :class:`Result` as a dict.  Never raises."""
    started = time.monotonic()
    seed = seed if seed is not None else secrets.randbits(63)
    result = Result(name=name, path=str(path), seed=seed)
    if not sandboxed:
        result.add_status("unsandboxed")
    workdir = Path(tempfile.mkdtemp(prefix="adamw-lab-grade-"))
    sandbox = None
    try:
        nb = read_submission(Path(path), result, exercise)
        if nb is None:
            return _finish(result, started)
        from adamw_lab.grading.sandbox import Sandbox

        cells = [c for c in _cells(nb) if c.source.strip() and c.role not in SKIPPED_ROLES]
        if not sandboxed:
            refused = [c for c in cells if _runs_shell(c.source)]
            for c in refused:
                result.add_status("shell-refused")
                result.cell_log.append(f"{c.label()}用了 shell 命令或魔法命令，没有沙箱时不运行。")
            cells = [c for c in cells if c not in refused]
        sources = [c.source for c in cells]
        flagged = {q.id: library_uses(q, sources) for q in EXERCISES[result.exercise]}

        sandbox = Sandbox(workdir, memory_mb=memory_mb, keep_bytes=MAX_REPLY_BYTES + 4096, isolated=sandboxed,
                          preload_optimizer=any(q.optimizer_ok for q in EXERCISES[result.exercise]))
        sandbox.start()
        good: list[str] = []          # cells that ran: replayed after a restart
        budget = started + max(20 * timeout, 300.0)   # everything below, replays included

        def left() -> float:
            return budget - time.monotonic()

        def ensure_alive() -> bool:
            """After a kill or a crash: a fresh kernel with the cells that worked replayed (within the budget)."""
            if not sandbox.alive():
                sandbox.restart()
                for replay in good:
                    if left() <= 0 or sandbox.run(replay, min(timeout, left())).status != "ok":
                        break
            return left() > 0

        restarts = 0
        for cell in cells:
            if left() <= 0:
                result.add_status("time-budget")
                break
            run = sandbox.run(cell.source, min(timeout, left()))
            if run.truncated:
                result.add_status("output-truncated")
            if run.status == "ok":
                good.append(cell.source)
                continue
            label = {"error": "cell-error", "timeout": "cell-timeout", "died": "kernel-died"}[run.status]
            result.add_status(label)
            result.cell_log.append(_cell_message(cell, run, timeout))
            if run.killed or not sandbox.alive():
                if restarts >= MAX_RESTARTS:
                    result.add_status("time-budget")
                    break
                restarts += 1
                if not ensure_alive():
                    result.add_status("time-budget")
                    break

        rng = np.random.default_rng(seed)
        for question in EXERCISES[result.exercise]:
            cases = question.draw_cases(rng)
            payload = json.dumps([[encode_argument(a) for a in case] for case in cases])
            nonce = "@@" + secrets.token_hex(16) + "@@"
            if not ensure_alive() or left() <= 0:
                result.add_status("time-budget")
                result.questions.append(_judge(question, None, cases))
                continue
            code = EVAL_HARNESS % {"wire": WIRE_SOURCE, "target": question.target, "cases": payload, "nonce": nonce}
            run = sandbox.run(code, min(timeout, max(left(), 1.0)))
            judged = _judge(question, _extract(run.stdout, nonce), cases, run)
            if judged.message.startswith(("评分得到的返回结果格式不对", "返回结果过大")):
                result.add_status("bad-reply")
            if flagged[question.id]:
                result.add_status("uses-reference")
                judged = QuestionResult(question.id, question.points, 0, FAILED,
                                        f"作答用到了 {', '.join(flagged[question.id])}，而这道题要求自己实现；记 0 分。")
            result.questions.append(judged)
    except Exception as exc:  # a bug in the grader must not stop the batch
        result.add_status("grader-error")
        result.cell_log.append(f"{type(exc).__name__}: {exc}"[:500])
    finally:
        if sandbox is not None:
            sandbox.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return _finish(result, started)


def _finish(result: Result, started: float) -> dict:
    result.seconds = round(time.monotonic() - started, 2)
    data = asdict(result)
    data.update(total=result.total, max_total=result.max_total, status=result.status)
    return data


# --- output files ----------------------------------------------------------------------------

def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def feedback_text(r: dict) -> str:
    lines = [f"# 评分反馈：{r['name']}", ""]
    lines.append(f"- 练习：{r['exercise'] or '（未识别）'}")
    lines.append(f"- 得分：{r['total']} / {r['max_total']}")
    lines.append(f"- 状态：{r['status']}")
    for s in r["statuses"]:
        lines.append(f"  - {s}：{STATUS_TEXT.get(s, '')}")
    lines.append(f"- 随机种子：{r['seed']}（评分用的输入由它生成，与 notebook 里检查单元格的输入不同）")
    lines.append("")
    if r["questions"]:
        lines.append("## 各题结果")
        lines.append("")
        for q in r["questions"]:
            lines.append(f"- {q['id']}（{q['score']}/{q['points']} 分）{q['status']}：{q['message']}")
        lines.append("")
    if r["cell_log"]:
        lines.append("## 运行记录")
        lines.append("")
        lines += [f"- {entry}" for entry in r["cell_log"]]
        lines.append("")
    return "\n".join(lines)


def csv_cell(value):
    """A CSV cell a spreadsheet will not read as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def grades_csv(results: list[dict]) -> str:
    question_ids = sorted({q["id"] for r in results for q in r["questions"]}
                          | {q.id for r in results for q in EXERCISES.get(r["exercise"], [])})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "exercise", *question_ids, "total", "max_total", "status"])
    for r in sorted(results, key=lambda r: r["name"]):
        scores = {q["id"]: q["score"] for q in r["questions"]}
        own = {q.id for q in EXERCISES.get(r["exercise"], [])}
        row = [scores.get(qid, 0) if qid in own else "" for qid in question_ids]
        writer.writerow([csv_cell(r["name"]), r["exercise"], *row, r["total"], r["max_total"], r["status"]])
    return out.getvalue()


def safe_name(name: str) -> str:
    """A file name for ``name``'s feedback: readable, and distinct for distinct names."""
    safe = re.sub(r"[^0-9A-Za-z._\-\u4e00-\u9fff]+", "_", name).lstrip(".")
    if safe != name:
        safe += "-" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:8]
    return safe[:200]


def submission_names(paths: list[Path]) -> list[str]:
    """Each submission's path relative to the folder that holds them all (unique by construction)."""
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in resolved])) if resolved else Path("/")
    return [_clean(str(p.relative_to(common))) for p in resolved]


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def grade_many(paths: list[Path], out: Path, *, jobs: int = 1, timeout: float = 60.0, memory_mb: int = 3072,
               exercise: str | None = None, seed: int | None = None, progress: bool = True,
               sandboxed: bool = True) -> list[dict]:
    """Grade ``paths`` in parallel into ``out``; reuse results of unchanged submissions graded the same way.

    Raises :class:`~adamw_lab.grading.sandbox.SandboxUnavailable` if ``sandboxed``
    and bubblewrap cannot run here.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    from tqdm import tqdm

    from adamw_lab.grading.sandbox import SandboxUnavailable, bwrap_works

    if sandboxed and bwrap_works() is not None:
        raise SandboxUnavailable(bwrap_works())
    out.mkdir(parents=True, exist_ok=True)
    state_dir = out / ".state"
    options = {"grader": grader_version(), "exercise": exercise, "timeout": timeout, "memory_mb": memory_mb,
               "seed": seed, "sandboxed": sandboxed}
    names = submission_names(paths)
    results: dict[str, dict] = {}
    todo = []
    for path, name in zip(paths, names):
        key = {"name": name, "sha256": file_digest(path), **options}
        state_file = state_dir / (safe_name(name) + ".json")
        try:
            cached = json.loads(state_file.read_text(encoding="utf-8"))
            if cached.get("key") == key and "grader-error" not in cached["result"]["statuses"]:
                results[name] = cached["result"]
                continue
        except (OSError, ValueError, KeyError, TypeError):
            pass
        todo.append((path, name, key, state_file))

    def record(name, key, state_file, result):
        results[name] = result
        atomic_write(out / "feedback" / (safe_name(name) + ".md"), feedback_text(result))
        if "grader-error" not in result["statuses"]:   # never cached: the next run tries again
            atomic_write(state_file, json.dumps({"key": key, "result": result}, ensure_ascii=False))
        atomic_write(out / "grades.csv", grades_csv(list(results.values())))

    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="grading", unit="nb", disable=not progress)
    context = multiprocessing.get_context("spawn")
    attempts = {name: 0 for _, name, _, _ in todo}
    while todo:
        retry = []
        with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(todo))), mp_context=context) as pool:
            futures = {pool.submit(grade_one, str(p), name=n, exercise=exercise, timeout=timeout,
                                   memory_mb=memory_mb, seed=seed, sandboxed=sandboxed): (p, n, k, s)
                       for p, n, k, s in todo}
            for future in as_completed(futures):
                path, name, key, state_file = item = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # the worker process died (or the pool broke): try again once
                    attempts[name] += 1
                    if attempts[name] < MAX_ATTEMPTS:
                        retry.append(item)
                        continue
                    result = _finish(Result(name=name, path=str(path), statuses=["grader-error"],
                                            cell_log=[f"{type(exc).__name__}: {exc}"[:500]]), time.monotonic())
                record(name, key, state_file, result)
                bar.update(1)
        todo = retry
    bar.close()
    atomic_write(out / "grades.csv", grades_csv(list(results.values())))
    for name in names:  # feedback files of cached results may have been deleted by hand
        f = out / "feedback" / (safe_name(name) + ".md")
        if not f.exists():
            atomic_write(f, feedback_text(results[name]))
    return [results[n] for n in names]
