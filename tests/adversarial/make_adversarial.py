"""Write the adversarial submissions of this folder from the ex00 notebooks.

    python tests/adversarial/make_adversarial.py

Each file is one way a submission can go wrong; ``EXPECTED`` (used by
tests/test_grader_adversarial.py) says what the grader must do with it: the
score it must give (out of 8) and the statuses it must report.

The notebooks are saved as ``.json`` rather than ``.ipynb`` (the grader reads
any file name): they are broken on purpose, and must not be collected by
``pytest --nbval`` or linted as book notebooks.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SOLUTION = ROOT / "exercises" / "solutions" / "ex00_adamw_step.ipynb"
STUDENT = ROOT / "exercises" / "ex00_adamw_step.ipynb"

# file name -> (score out of 8, statuses that must appear)
EXPECTED = {
    "hang_in_cell.json": (8, {"cell-timeout"}),
    "hang_ignoring_interrupt.json": (8, {"cell-timeout"}),
    "kernel_exit.json": (8, {"kernel-died"}),
    "kernel_segfault.json": (8, {"kernel-died"}),
    "many_crashes.json": (2, {"kernel-died", "time-budget"}),  # 4 crashing cells after q1: gives up after 3 restarts
    "memory_hog.json": (8, {"cell-error"}),
    "cell_raises.json": (7, {"cell-error"}),          # q2's cell raises before defining bias_correct
    "function_hangs.json": (7, {"ok"}),               # bias_correct loops forever when called
    "function_exits.json": (7, {"ok"}),               # bias_correct kills the kernel when called
    "huge_output.json": (8, {"output-truncated"}),
    "stderr_warnings.json": (8, {"ok"}),
    "reads_environment.json": (8, {"ok"}),            # a cell fails if the grader's secrets reach the kernel
    "monkeypatch_checks.json": (0, {"cell-error"}),   # student stubs + patches the checks: not in the sandbox
    "monkeypatch_with_partial.json": (3, {"cell-error"}),  # q1 + q2 honest, rest stubs, tries to patch the checks
    "patched_serializer.json": (3, {"kernel-died"}),  # q1+q2 honest; json.dumps replaced to forge replies
    "forged_reply.json": (0, {"bad-reply"}),          # honest code, but stdout rewritten: every reply malformed
    "oversized_reply.json": (6, {"ok"}),              # q1 returns millions of numbers: that question 0
    "answer_key_hunt.json": (0, {"uses-reference"}),  # looks for the bank, theory, reference, solutions: finds none
    "fullwidth_import.json": (5, {"uses-reference", "cell-error"}),  # q3 imports ｒｅｆｅｒｅｎｃｅ (full-width)
    "aliased_torch_optim.json": (5, {"uses-reference"}),  # q3 reaches torch.optim through an alias and a helper
    "sandbox_escape.json": (8, {"ok"}),               # a cell fails if it sees the host, the network or other kernels
    "detached_writer.json": (8, {"ok"}),              # leaves a process behind that would write on the host
    "kill_everything.json": (8, {"kernel-died"}),     # kills every process it can see
    "fills_disk.json": (8, {"cell-error"}),           # writes past the size limit of its home folder
    "shell_magic.json": (8, {"ok"}),                  # %%bash and ! run, inside the sandbox
    "lone_surrogate.json": (8, {"ok"}),               # a lone surrogate in a comment (Jupyter opens it)
    "weird_structure.json": (0, {"ok"}),              # valid JSON, cells of the wrong types
    "equals_everything.json": (0, {"ok"}),
    "hardcoded.json": (0, {"ok"}),
    "forged_outputs.json": (0, {"ok"}),               # stub code, stored outputs say 通过
    "fake_result_print.json": (0, {"ok"}),            # prints fake grader replies
    "partial_wrong_sign.json": (3, {"ok"}),           # q3 and q4 wrong
    "uses_reference.json": (5, {"uses-reference", "cell-error"}),  # q3 calls adamw_lab.reference (absent, flagged)
    "renamed_copy_of_solution.json": (8, {"ok"}),     # file name says nothing: metadata does
    "student_stub.json": (0, {"ok"}),                 # an innocent blank notebook graded alongside
    "no_metadata.json": (0, {"no-exercise-metadata"}),
    "unknown_exercise.json": (0, {"unknown-exercise"}),
    "malformed_json.json": (0, {"not-a-notebook"}),
    "not_a_notebook.json": (0, {"not-a-notebook"}),
    "binary_garbage.bin": (0, {"not-a-notebook"}),
    "empty_file.json": (0, {"not-a-notebook"}),
    "ex01_submitted_for_ex00.json": (6, set()),       # graded as ex01 (its metadata): 6/6; wrong-exercise with --exercise ex00
}
# A file the escape attempts would create on the host if the sandbox leaked (checked by the test).
ESCAPE_MARKER = "/tmp/adamw-lab-sandbox-escape-marker"


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _answer_index(nb, qid: str) -> int:
    for i, cell in enumerate(nb.cells):
        info = cell.metadata.get("adamw_lab", {})
        if info.get("question") == qid and info.get("role") == "answer":
            return i
    raise KeyError(qid)


def _insert_after(nb, qid: str, source: str):
    nb.cells.insert(_answer_index(nb, qid) + 1, nbformat.v4.new_code_cell(source))
    return nb


def _set_answer(nb, qid: str, source: str):
    nb.cells[_answer_index(nb, qid)].source = source
    return nb


def _write(nb, name: str) -> None:
    nbformat.write(nb, HERE / name)


def main() -> None:
    sol = _read(SOLUTION)
    stu = _read(STUDENT)

    _write(_insert_after(copy.deepcopy(sol), "ex00.q2", "while True:\n    pass"), "hang_in_cell.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q2",
                         "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass"),
           "hang_ignoring_interrupt.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1", "import os\nos._exit(3)"), "kernel_exit.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q3", "import ctypes\nctypes.string_at(0)"), "kernel_segfault.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1", "hog = bytearray(64 * 2**30)"), "memory_hog.json")
    nb = copy.deepcopy(sol)
    for _ in range(4):
        _insert_after(nb, "ex00.q1", "import os\nos._exit(1)")
    _write(nb, "many_crashes.json")

    nb = copy.deepcopy(sol)
    i = _answer_index(nb, "ex00.q2")
    nb.cells[i].source = "1 / 0\n" + nb.cells[i].source
    _write(nb, "cell_raises.json")

    _write(_set_answer(copy.deepcopy(sol), "ex00.q2",
                       "def bias_correct(m, v, t, beta1, beta2):\n    while True:\n        pass"), "function_hangs.json")
    _write(_set_answer(copy.deepcopy(sol), "ex00.q2",
                       "def bias_correct(m, v, t, beta1, beta2):\n    import os\n    os._exit(1)"), "function_exits.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1",
                         "import sys\nfor _ in range(200):\n    sys.stdout.write('x' * 100_000 + '\\n')"), "huge_output.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1",
                         "import sys, warnings\nwarnings.warn('a harmless warning')\n"
                         "print('Warning: something on stderr', file=sys.stderr)"), "stderr_warnings.json")

    _write(_insert_after(copy.deepcopy(sol), "ex00.q1",
                         "import os\nassert 'ADAMW_LAB_TEST_SECRET' not in os.environ, 'the grader leaked its environment'"),
           "reads_environment.json")

    patch = '''import builtins, numpy, torch
import adamw_lab.grading.checks as checks
import adamw_lab.grading.core as core
checks.check = lambda *a, **k: print("通过")
core.compare = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
numpy.allclose = lambda *a, **k: True
builtins.abs = lambda x: 0
check = checks.check'''
    _write(_insert_after(copy.deepcopy(stu), "ex00.q1", patch), "monkeypatch_checks.json")
    nb = copy.deepcopy(stu)
    for qid in ("ex00.q1", "ex00.q2"):
        nb.cells[_answer_index(nb, qid)] = copy.deepcopy(sol.cells[_answer_index(sol, qid)])
    _write(_insert_after(nb, "ex00.q2", patch), "monkeypatch_with_partial.json")

    serializer = """import json
json.dumps = lambda *a, **k: '[{"value": "通过"}, {"value": "通过"}, {"value": "通过"}]'"""
    nb = copy.deepcopy(stu)
    for qid in ("ex00.q1", "ex00.q2"):
        nb.cells[_answer_index(nb, qid)] = copy.deepcopy(sol.cells[_answer_index(sol, qid)])
    _write(_insert_after(nb, "ex00.q4", serializer), "patched_serializer.json")
    (HERE / "weird_structure.json").write_text(json.dumps({
        "cells": [42, "text", {"cell_type": "code", "source": 12345, "metadata": []},
                  {"cell_type": "code", "source": ["def update_", "moments(*a):\n", "    return None"]}],
        "metadata": {"adamw_lab": {"exercise": "ex00"}}, "nbformat": 4, "nbformat_minor": 5}), encoding="utf-8")

    everything = '''class Anything:
    """Claims to be equal to, and close to, everything."""
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __float__(self): return 0.0
    def __array__(self, *a, **k):
        raise TypeError("no")
    def __iter__(self): return iter([self, self, self])
    def __len__(self): return 3
    def __getattr__(self, name): return lambda *a, **k: self

def update_moments(g, m, v, beta1, beta2): return Anything()
def bias_correct(m, v, t, beta1, beta2): return (Anything(), Anything())
def adamw_step(w, g, m, v, t, lr, beta1, beta2, eps, weight_decay): return Anything()
def torch_adamw_run(w0, grads, lr, weight_decay): return Anything()'''
    _write(_insert_after(copy.deepcopy(stu), "ex00.q4", everything), "equals_everything.json")

    hard = '''import numpy as np
def update_moments(g, m, v, beta1, beta2): return np.array([0.1, 0.2, 0.3]), np.array([1e-3, 1e-3, 1e-3])
def bias_correct(m, v, t, beta1, beta2): return (1.0, 1.0)
def adamw_step(w, g, m, v, t, lr, beta1, beta2, eps, weight_decay): return (np.zeros(5), np.zeros(5), np.zeros(5))
def torch_adamw_run(w0, grads, lr, weight_decay): return [0.5, -0.25, 0.125]'''
    _write(_insert_after(copy.deepcopy(stu), "ex00.q4", hard), "hardcoded.json")

    nb = copy.deepcopy(stu)
    for cell, sol_cell in zip(nb.cells, sol.cells):
        if cell.cell_type == "code" and cell.metadata.get("adamw_lab", {}).get("role") == "check":
            cell.outputs = copy.deepcopy(sol_cell.outputs)
    _write(nb, "forged_outputs.json")

    fake = '''import json
for nonce in ("@@", "@@0@@"):
    print(nonce + json.dumps([{"value": [[1.0], [1.0]]}] * 3) + nonce)
print("ex00.q1（2 分）通过")'''
    _write(_insert_after(copy.deepcopy(stu), "ex00.q4", fake), "fake_result_print.json")

    nb = copy.deepcopy(sol)
    i = _answer_index(nb, "ex00.q3")
    nb.cells[i].source = nb.cells[i].source.replace("- lr * m_hat", "+ lr * m_hat")
    i = _answer_index(nb, "ex00.q4")
    nb.cells[i].source = nb.cells[i].source.replace("weight_decay=weight_decay", "weight_decay=0.0")
    _write(nb, "partial_wrong_sign.json")

    _write(_set_answer(copy.deepcopy(sol), "ex00.q3",
                       "from adamw_lab import reference\n\n"
                       "def adamw_step(w, g, m, v, t, lr, beta1, beta2, eps, weight_decay):\n"
                       "    return reference.adamw_step(w, g, m, v, t, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)"),
           "uses_reference.json")

    forge = """import sys
class Forger:
    def __init__(self, stream): self.stream = stream
    def write(self, text): return self.stream.write(text.replace('"value"', '"valeur"'))
    def __getattr__(self, name): return getattr(self.stream, name)
sys.stdout = Forger(sys.stdout)"""
    _write(_insert_after(copy.deepcopy(sol), "ex00.q4", forge), "forged_reply.json")
    _write(_set_answer(copy.deepcopy(sol), "ex00.q1",
                       "def update_moments(g, m, v, beta1, beta2):\n    return [[0.5] * 1000] * 600, v"), "oversized_reply.json")
    hunt = """import glob, os
found = []
for mod in ("adamw_lab.grading.bank", "adamw_lab.grading.core", "adamw_lab.theory", "adamw_lab.reference"):
    try:
        __import__(mod)
        found.append(mod)
    except ImportError:
        pass
for root in ("/work", "/root", "/home", "/srv", "/mnt", "/var", "/opt", "/tmp"):
    for pattern in ("/**/solutions/ex*.ipynb", "/**/grading/bank.py", "/**/adamw_lab/reference.py", "/**/adamw_lab/theory.py"):
        found += glob.glob(root + pattern, recursive=True)[:3]

def answer_from_key(*args):
    if found:
        import adamw_lab.grading.bank as bank  # would give the expected values
    return None

update_moments = bias_correct = adamw_step = torch_adamw_run = answer_from_key"""
    _write(_insert_after(copy.deepcopy(stu), "ex00.q4", hunt), "answer_key_hunt.json")
    _write(_set_answer(copy.deepcopy(sol), "ex00.q3",
                       "from adamw_lab import \uff52\uff45\uff46\uff45\uff52\uff45\uff4e\uff43\uff45 as r\n\n"
                       "def adamw_step(w, g, m, v, t, lr, beta1, beta2, eps, weight_decay):\n"
                       "    return r.adamw_step(w, g, m, v, t, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)"),
           "fullwidth_import.json")
    nb = copy.deepcopy(sol)
    i = _answer_index(nb, "ex00.q3")
    nb.cells[i].source = ("O = torch.optim\n\ndef _helper(p, lr):\n    return getattr(O, 'AdamW')([p], lr=lr)\n\n"
                          + nb.cells[i].source.replace("    m = beta1 * m", "    _helper(torch.nn.Parameter(torch.zeros(1)), lr)\n    m = beta1 * m", 1))
    _write(nb, "aliased_torch_optim.json")
    escape = """import glob, os, socket, sys
problems = []
for env in glob.glob('/proc/*/environ'):
    try:
        if b'ADAMW_LAB_TEST_SECRET' in open(env, 'rb').read():
            problems.append(env)
    except OSError:
        pass
for cmd in glob.glob('/proc/*/cmdline'):
    try:
        if b'pytest' in open(cmd, 'rb').read() or b'adamw-lab grade' in open(cmd, 'rb').read():
            problems.append(cmd)
    except OSError:
        pass
own = {os.path.dirname(a) for a in sys.argv if a.endswith('.json')}
hidden = {'/proc', '/sys', '/dev', '/usr', '/etc', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/opt',
          '/tmp', '/home/student', os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)} | own
for root, dirs, files in os.walk('/'):
    dirs[:] = [d for d in dirs if os.path.join(root, d) not in hidden]
    problems += [os.path.join(root, f) for f in files if root not in own][:5]
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2)
    problems.append('network')
except OSError:
    pass
for path in ('/usr/escape', '/etc/escape', os.path.join(sys.prefix, 'escape')):
    try:
        open(path, 'w').write('x')
        problems.append('wrote ' + path)
    except OSError:
        pass
assert not problems, problems"""
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1", escape), "sandbox_escape.json")
    detached = f"""import subprocess, sys
subprocess.Popen([sys.executable, '-c', "import time\\ntime.sleep(4)\\nopen('{ESCAPE_MARKER}', 'w').write('escaped')"],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"""
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1", detached), "detached_writer.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q4",
                         "import os, signal\nfor pid in sorted((int(p) for p in os.listdir('/proc') if p.isdigit()), reverse=True):\n"
                         "    if pid != os.getpid():\n        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
                         "os.kill(os.getpid(), signal.SIGKILL)"), "kill_everything.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1",
                         "import os\nwith open(os.path.expanduser('~/big.bin'), 'wb') as f:\n    for _ in range(200):\n        f.write(b'x' * 2**20)"),
           "fills_disk.json")
    _write(_insert_after(copy.deepcopy(sol), "ex00.q1", "%%bash\necho hello > /tmp/from_bash.txt\ncat /tmp/from_bash.txt"),
           "shell_magic.json")
    nb = copy.deepcopy(sol)
    i = _answer_index(nb, "ex00.q2")
    nb.cells[i].source = "# a lone surrogate: \ud800\n" + nb.cells[i].source
    (HERE / "lone_surrogate.json").write_text(json.dumps(nb, ensure_ascii=True), encoding="utf-8")
    _write(copy.deepcopy(stu), "student_stub.json")
    _write(copy.deepcopy(sol), "renamed_copy_of_solution.json")
    nb = copy.deepcopy(sol)
    del nb.metadata["adamw_lab"]
    _write(nb, "no_metadata.json")
    nb = copy.deepcopy(sol)
    nb.metadata["adamw_lab"]["exercise"] = "ex99"
    _write(nb, "unknown_exercise.json")

    text = SOLUTION.read_text(encoding="utf-8")
    (HERE / "malformed_json.json").write_text(text[: len(text) // 2], encoding="utf-8")
    (HERE / "not_a_notebook.json").write_text("def adamw_step():\n    return 42\n", encoding="utf-8")
    (HERE / "binary_garbage.bin").write_bytes(bytes(range(256)) * 16)
    (HERE / "empty_file.json").write_text("", encoding="utf-8")

    _write(_read(ROOT / "exercises" / "solutions" / "ex01_coupling.ipynb"), "ex01_submitted_for_ex00.json")


if __name__ == "__main__":
    main()
