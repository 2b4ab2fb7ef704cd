"""Batch grader: ``adamw-lab grade SUBMISSION.ipynb... --out DIR``.

For each submission, in a worker process of its own pool slot:

1. read the file as a notebook and find the exercise in its metadata
   (``metadata.adamw_lab.exercise``), never in the file name;
2. start a sandboxed kernel (:mod:`adamw_lab.grading.sandbox`) in a fresh
   temporary directory and run the student's code cells one by one, each with
   a timeout; a cell that raises, hangs or kills the kernel is recorded, the
   kernel is restarted and the cells that worked are replayed;
3. for each question, ask the kernel to call the student's function on fresh
   random inputs drawn here, and to send back what it returned as JSON;
4. check that JSON is plain data (numbers and lists) and compare it, here, with
   the answer computed from :mod:`adamw_lab.reference`.

Student code runs only in the kernel.  The notebook's own check cells are
skipped: nothing the kernel says about itself is trusted, only the numbers its
functions return for inputs it has not seen before.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from adamw_lab.grading.bank import EXERCISES, QUESTIONS
from adamw_lab.grading.core import (FAILED, PASSED, TODO, NotPlainData, compare, encode_argument,
                                    expected_plain, validate_plain)

MAX_FILE_BYTES = 20 * 2**20
MAX_RESTARTS = 3
METADATA_KEY = "adamw_lab"

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
    "time-budget": "整份 notebook 运行时间超出上限，或内核崩溃重启的次数太多，其余单元格未运行。",
    "tampered": "代码修改了内置函数、torch/numpy 或检查函数；评分不依赖它们，所以得分不受影响，但请老师留意。",
    "uses-reference": "答案单元格引用了 adamw_lab.reference 或 adamw_lab.grading（参考实现）；得分照常，请老师核查。",
    "grader-error": "评分程序自身出错（不是学生的问题）；请把反馈文件交给课程维护者。",
}

# Runs in the kernel after the student's cells: which checked-against objects were replaced?
TAMPER_PROBE = r"""
def __adamw_lab_probe():
    import builtins, json, types, sys
    bad = []
    for name in ("print", "len", "abs", "float", "int", "isinstance", "type", "open", "max", "min",
                 "sum", "round", "__import__", "getattr", "setattr", "callable", "repr"):
        obj = getattr(builtins, name, None)
        if not isinstance(obj, (types.BuiltinFunctionType, type)):
            bad.append("builtins." + name)
    for mod_name, names in (("torch", ("allclose", "isclose", "equal")), ("numpy", ("allclose", "isclose", "array_equal"))):
        mod = sys.modules.get(mod_name)
        for name in names:
            obj = getattr(mod, name, None) if mod else None
            if obj is not None and getattr(obj, "__module__", "") not in (mod_name, "numpy", "numpy._core.numeric", "numpy.core.numeric", "torch", None) and not isinstance(obj, types.BuiltinFunctionType):
                bad.append(mod_name + "." + name)
    for mod_name in ("adamw_lab.grading.checks", "adamw_lab.grading.core", "adamw_lab.grading.bank", "adamw_lab.reference"):
        mod = sys.modules.get(mod_name)
        if mod is None:
            continue
        own_file = getattr(mod, "__file__", "") or ""
        for name, obj in vars(mod).items():
            if not isinstance(obj, types.FunctionType):
                continue
            where = obj.__code__.co_filename
            from_notebook = obj.__module__ == "__main__" or where.startswith("<") or "ipykernel" in where
            if from_notebook or (obj.__module__ == mod_name and where != own_file):
                bad.append(mod_name + "." + name)
    print(%(nonce)r + json.dumps(bad) + %(nonce)r)
__adamw_lab_probe()
del __adamw_lab_probe
"""

# Runs in the kernel: call the student's function on the grader's inputs, send back plain data.
EVAL_HARNESS = r"""
def __adamw_lab_eval():
    import json
    import numpy as np
    from adamw_lab.grading.core import decode_argument, to_plain
    out = []
    func = globals().get(%(target)r)
    for case in json.loads(%(cases)r):
        if func is None:
            out.append({"missing": True})
            continue
        try:
            got = func(*[decode_argument(a) for a in case])
            if got is None or got is Ellipsis:
                out.append({"todo": True})
            else:
                out.append({"value": to_plain(got)})
        except NotImplementedError:
            out.append({"todo": True})
        except BaseException as exc:
            out.append({"error": type(exc).__name__ + ": " + str(exc)[:200]})
    print(%(nonce)r + json.dumps(out) + %(nonce)r)
__adamw_lab_eval()
del __adamw_lab_eval
"""


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
    """Hash of the grading code: a change invalidates cached results."""
    digest = hashlib.sha256()
    for name in ("bank.py", "core.py", "grader.py", "sandbox.py", "kernel.py"):
        digest.update((Path(__file__).parent / name).read_bytes())
    digest.update((Path(__file__).parents[1] / "reference.py").read_bytes())
    return digest.hexdigest()[:16]


# --- one submission ------------------------------------------------------------------------

def _extract(stdout: str, nonce: str):
    """The JSON between the two nonces in the kernel's stdout, or None."""
    parts = stdout.split(nonce)
    if len(parts) < 3:
        return None
    return parts[1]


def _code_cells(nb: dict) -> list[tuple[int, str, dict]]:
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        meta = cell.get("metadata", {}) if isinstance(cell.get("metadata"), dict) else {}
        cells.append((i, source, meta))
    return cells


def _is_check_cell(meta: dict) -> bool:
    info = meta.get(METADATA_KEY, {})
    return isinstance(info, dict) and info.get("role") == "check"


def read_submission(path: Path, result: Result, exercise_option: str | None) -> dict | None:
    """The notebook as a dict, with ``result.exercise`` set; None (and a status) if it cannot be graded."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            result.add_status("too-large")
            return None
        nb = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no cells")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
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


def _cell_message(index: int, run, timeout: float) -> str:
    """One line of the feedback's 运行记录 about a cell that did not run cleanly."""
    if run.status == "error":
        return f"单元格 {index} 报错：{run.error}"
    if run.status == "timeout" and not run.killed:
        return f"单元格 {index} 运行超过 {timeout:g} 秒，已中断；后面的单元格照常运行。"
    if run.status == "timeout":
        return f"单元格 {index} 运行超过 {timeout:g} 秒且不响应中断，已强制结束内核；重启后重放了之前成功的单元格。"
    if run.error:
        return f"单元格 {index} 破坏了内核的通信（例如替换了 json.dumps）；重启内核后重放了之前成功的单元格，这个单元格不再运行。"
    return f"单元格 {index} 让内核退出或崩溃（例如 os._exit、段错误）；重启后重放了之前成功的单元格。"


def _judge(question, raw: str | None, cases, run=None) -> QuestionResult:
    def res(status, message):
        return QuestionResult(question.id, question.points, question.points if status == PASSED else 0, status, message)

    if raw is None:
        if run is not None and run.status == "timeout":
            return res(FAILED, "调用你的函数时超时（死循环，或计算太慢）。")
        if run is not None and run.status == "died":
            return res(FAILED, "调用你的函数时内核崩溃或退出了。")
        return res(FAILED, "没有得到函数的返回结果（输出被截断，或评分代码被干扰）。")
    try:
        answers = validate_plain_outer(json.loads(raw), len(cases))
    except (ValueError, NotPlainData) as exc:
        return res(FAILED, f"返回的不是普通数据：{exc}")
    for answer, case in zip(answers, cases):
        if answer.get("missing"):
            return res(TODO, f"没有找到函数 {question.target}（名字写错了，或定义它的单元格出错）。")
        if answer.get("todo"):
            return res(TODO, "函数还没有实现。")
        if "error" in answer and answer["error"].startswith("NotPlainData"):
            return res(FAILED, "返回值必须是数、数组（NumPy 或 torch）或它们组成的元组，不能是其他对象。")
        if "error" in answer:
            return res(FAILED, f"函数运行时出错：{str(answer['error'])[:200]}")
        try:
            got = validate_plain(answer.get("value"))
        except NotPlainData as exc:
            return res(FAILED, f"返回值必须是数、数组或它们组成的元组：{exc}")
        why = compare(question, got, expected_plain(question.expected(*case)))
        if why:
            return res(FAILED, f"{why}。提示：{question.hint}")
    return res(PASSED, f"在 {len(cases)} 组新的随机输入上与参考实现一致（容差 {question.tolerance_text()}）。")


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


def _scan_sources(sources: list[str]) -> bool:
    pattern = re.compile(r"adamw_lab\s*\.\s*(reference|grading)|from\s+adamw_lab(\.grading)?\s+import\s+.*(reference|bank|QUESTIONS)")
    return any(pattern.search(s) for s in sources)


def grade_one(path: str, *, name: str, exercise: str | None = None, timeout: float = 60.0,
              memory_mb: int = 3072, seed: int | None = None) -> dict:
    """Grade one submission; returns :class:`Result` as a dict.  Never raises."""
    started = time.monotonic()
    seed = seed if seed is not None else secrets.randbits(63)
    result = Result(name=name, path=str(path), seed=seed)
    workdir = Path(tempfile.mkdtemp(prefix="adamw-lab-grade-"))
    sandbox = None
    try:
        nb = read_submission(Path(path), result, exercise)
        if nb is None:
            return _finish(result, started)
        from adamw_lab.grading.sandbox import Sandbox

        cells = [(i, src, meta) for i, src, meta in _code_cells(nb) if src.strip() and not _is_check_cell(meta)]
        answer_sources = [src for _, src, meta in cells if isinstance(meta.get(METADATA_KEY), dict)
                          and meta[METADATA_KEY].get("role") == "answer"]
        if _scan_sources(answer_sources):
            result.add_status("uses-reference")

        sandbox = Sandbox(workdir, memory_mb=memory_mb, keep_bytes=1_000_000)
        sandbox.start()
        good: list[str] = []          # cells that ran: replayed after a restart

        def ensure_alive():
            """After a kill or a crash: a fresh kernel with the cells that worked replayed."""
            if not sandbox.alive():
                sandbox.restart()
                for replay in good:
                    # these cells finished in time once; slack for a busy machine
                    if sandbox.run(replay, max(3 * timeout, 30.0)).status != "ok":
                        break

        restarts = 0
        budget = started + max(20 * timeout, 300.0)
        for index, source, _ in cells:
            if time.monotonic() > budget:
                result.add_status("time-budget")
                break
            run = sandbox.run(source, timeout)
            if run.truncated:
                result.add_status("output-truncated")
            if run.status == "ok":
                good.append(source)
                continue
            label = {"error": "cell-error", "timeout": "cell-timeout", "died": "kernel-died"}[run.status]
            result.add_status(label)
            result.cell_log.append(_cell_message(index, run, timeout))
            if run.killed or not sandbox.alive():
                if restarts >= MAX_RESTARTS:
                    result.add_status("time-budget")
                    break
                restarts += 1
                ensure_alive()

        ensure_alive()
        nonce = "@@" + secrets.token_hex(16) + "@@"
        probe = sandbox.run(TAMPER_PROBE % {"nonce": nonce}, timeout)
        raw = _extract(probe.stdout, nonce)
        try:
            tampered = json.loads(raw) if raw else []
            if type(tampered) is not list or not all(type(t) is str for t in tampered):
                tampered = ["（探测结果被伪造）"]
        except ValueError:
            tampered = ["（探测结果被伪造）"]
        if tampered or raw is None:
            result.add_status("tampered")
            result.cell_log.append("被修改的对象：" + ", ".join(map(str, tampered or ["（探测失败）"]))[:500])

        rng = np.random.default_rng(seed)
        for question in EXERCISES[result.exercise]:
            cases = question.draw_cases(rng)
            payload = json.dumps([[encode_argument(a) for a in case] for case in cases])
            nonce = "@@" + secrets.token_hex(16) + "@@"
            ensure_alive()
            run = sandbox.run(EVAL_HARNESS % {"target": question.target, "cases": payload, "nonce": nonce}, timeout)
            result.questions.append(_judge(question, _extract(run.stdout, nonce), cases, run))
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
        writer.writerow([r["name"], r["exercise"], *row, r["total"], r["max_total"], r["status"]])
    return out.getvalue()


def safe_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z._\-\u4e00-\u9fff]+", "_", name)


def submission_names(paths: list[Path]) -> list[str]:
    """The file name of each submission; parent folders are added only to tell equal names apart."""
    names = [p.name for p in paths]
    counts = {n: names.count(n) for n in names}
    return [p.name if counts[p.name] == 1 else f"{p.parent.name}/{p.name}" for p in paths]


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def grade_many(paths: list[Path], out: Path, *, jobs: int = 1, timeout: float = 60.0, memory_mb: int = 3072,
               exercise: str | None = None, seed: int | None = None, progress: bool = True) -> list[dict]:
    """Grade ``paths`` in parallel into ``out``; reuse results of unchanged submissions."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    state_dir = out / ".state"
    version = grader_version()
    names = submission_names(paths)
    results: dict[str, dict] = {}
    todo = []
    for path, name in zip(paths, names):
        key = {"sha256": file_digest(path), "grader": version, "exercise": exercise}
        state_file = state_dir / (safe_name(name) + ".json")
        try:
            cached = json.loads(state_file.read_text(encoding="utf-8"))
            if cached.get("key") == key:
                results[name] = cached["result"]
                continue
        except (OSError, ValueError):
            pass
        todo.append((path, name, key, state_file))

    def record(name, key, state_file, result):
        results[name] = result
        atomic_write(out / "feedback" / (safe_name(name) + ".md"), feedback_text(result))
        atomic_write(state_file, json.dumps({"key": key, "result": result}, ensure_ascii=False))
        atomic_write(out / "grades.csv", grades_csv(list(results.values())))

    bar = tqdm(total=len(paths), initial=len(paths) - len(todo), desc="grading", unit="nb", disable=not progress)
    if todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context) as pool:
            futures = {pool.submit(grade_one, str(p), name=n, exercise=exercise, timeout=timeout,
                                   memory_mb=memory_mb, seed=seed): (p, n, k, s) for p, n, k, s in todo}
            for future in as_completed(futures):
                path, name, key, state_file = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # the worker itself died: record it, go on
                    result = _finish(Result(name=name, path=str(path), statuses=["grader-error"],
                                            cell_log=[f"{type(exc).__name__}: {exc}"[:500]]), time.monotonic())
                record(name, key, state_file, result)
                bar.update(1)
    bar.close()
    atomic_write(out / "grades.csv", grades_csv(list(results.values())))
    for name in names:  # feedback files of cached results may have been deleted by hand
        f = out / "feedback" / (safe_name(name) + ".md")
        if not f.exists():
            atomic_write(f, feedback_text(results[name]))
    return [results[n] for n in names]
