"""Student notebooks from solution notebooks (a repository tool, not installed).

    python tools/make_exercises.py            # regenerate and execute the student notebooks
    python tools/make_exercises.py --check    # exit 1 if a student notebook is out of date
    python tools/make_exercises.py --solutions  # re-execute the solutions in place first

The one source of each exercise is ``exercises/solutions/exNN_*.ipynb``.  In it,

- code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines becomes
  ``# YOUR CODE HERE`` + ``raise NotImplementedError`` (same indentation);
- markdown between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` is removed;
- cells tagged ``solution-only`` are dropped.

The student notebook ``exercises/exNN_*.ipynb`` (same file name) is then
executed, so that the book and Colab show every check saying 未完成.
"""
from __future__ import annotations

import argparse
import copy
import sys
import re
from pathlib import Path

import nbformat

CODE_REGION = re.compile(r"^([ \t]*)# BEGIN SOLUTION[^\n]*\n.*?^[ \t]*# END SOLUTION[^\n]*(\n|$)", re.S | re.M)
MD_REGION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->\n?", re.S)
STUB = "{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError\n"


def repository_root() -> Path:
    return Path(__file__).resolve().parents[1]


def solution_paths(root: Path) -> list[Path]:
    return sorted((root / "exercises" / "solutions").glob("ex[0-9][0-9]_*.ipynb"))


def student_path(solution: Path) -> Path:
    return solution.parent.parent / solution.name


def strip_code(source: str) -> str:
    return CODE_REGION.sub(lambda m: STUB.format(indent=m.group(1)), source).rstrip("\n")


def student_version(solution_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(solution_nb)
    cells = []
    for cell in nb.cells:
        if "solution-only" in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            cell.source = strip_code(cell.source)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = MD_REGION.sub("", cell.source)
        cells.append(cell)
    nb.cells = cells
    nb.metadata["adamw_lab"]["variant"] = "student"
    return nb


def execute_notebook(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _signature(nb) -> list:
    """What must agree between a committed student notebook and a fresh one: not outputs."""
    return [nb.metadata.get("adamw_lab")] + [
        (c.cell_type, c.source, {k: v for k, v in c.metadata.items() if k != "execution"}) for c in nb.cells]


def stale(root: Path) -> list[tuple[Path, str]]:
    problems = []
    solutions = solution_paths(root)
    for sol in solutions:
        target = student_path(sol)
        if not target.exists():
            problems.append((target, "missing"))
            continue
        fresh = student_version(nbformat.read(sol, as_version=4))
        committed = nbformat.read(target, as_version=4)
        if _signature(fresh) != _signature(committed):
            problems.append((target, "out of date with " + str(sol.relative_to(root))))
    names = {s.name for s in solutions}
    for extra in sorted((root / "exercises").glob("ex[0-9][0-9]_*.ipynb")):
        if extra.name not in names:
            problems.append((extra, "has no solution notebook"))
    return problems


def execute_solutions(root: Path) -> list[Path]:
    """Re-execute the solution notebooks in place (their stored outputs: every check 通过)."""
    done = []
    for sol in solution_paths(root):
        nb = execute_notebook(nbformat.read(sol, as_version=4), sol.parent)
        nbformat.write(nb, sol)
        done.append(sol)
    return done


def write_all(root: Path, execute: bool = True) -> list[Path]:
    written = []
    for sol in solution_paths(root):
        nb = student_version(nbformat.read(sol, as_version=4))
        if execute:
            nb = execute_notebook(nb, sol.parent.parent)
        nbformat.write(nb, student_path(sol))
        written.append(student_path(sol))
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write exercises/exNN_*.ipynb from exercises/solutions/exNN_*.ipynb "
                                                 "(solution regions replaced by stubs) and execute them.")
    parser.add_argument("--check", action="store_true", help="only report student notebooks that are out of date")
    parser.add_argument("--no-execute", action="store_true", help="write without executing")
    parser.add_argument("--solutions", action="store_true", help="also re-execute the solution notebooks in place first")
    args = parser.parse_args(argv)
    root = repository_root()
    if args.check:
        out_of_date = stale(root)
        for path, why in out_of_date:
            print(f"{path}: {why}; run `python tools/make_exercises.py`")
        return 1 if out_of_date else 0
    if args.solutions:
        for path in execute_solutions(root):
            print(f"executed {path}")
    for path in write_all(root, execute=not args.no_execute):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
