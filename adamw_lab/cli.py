"""Command line of adamw_lab: ``adamw-lab grade`` (needs the ``[grading]`` extra and bubblewrap).

    adamw-lab grade SUBMISSION.ipynb... --out DIR [--jobs N] [--timeout S]

The student notebooks are generated from the solutions by a repository tool,
``python tools/make_exercises.py``, which is not part of the installed package.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adamw-lab", description="Tools of the book 'AdamW and decoupled weight decay'.")
    sub = parser.add_subparsers(dest="command", required=True)

    grade = sub.add_parser("grade", help="grade exercise notebooks in sandboxed kernels",
                           description="Grade submitted exercise notebooks. Writes DIR/grades.csv and "
                                       "DIR/feedback/<submission>.md; a rerun skips unchanged submissions.")
    grade.add_argument("submissions", nargs="+", type=Path, metavar="SUBMISSION.ipynb")
    grade.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    grade.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1, metavar="N",
                       help="submissions graded in parallel (default: number of CPU cores)")
    grade.add_argument("--timeout", type=_positive_float, default=60.0, metavar="S",
                       help="seconds per cell before interrupt, then kill (default: 60)")
    grade.add_argument("--memory", type=_positive_int, default=3072, metavar="MB",
                       help="address-space limit of each student kernel in MiB (default: 3072)")
    grade.add_argument("--exercise", metavar="EXNN",
                       help="expected exercise (e.g. ex03): other exercises get status wrong-exercise; "
                            "also grades notebooks that lost their metadata")
    grade.add_argument("--seed", type=int, help="seed of the grader's random inputs (default: fresh each run)")
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument("--no-sandbox", action="store_true",
                       help="run student kernels without the bubblewrap sandbox (they can then read and write "
                            "what you can); recorded as status 'unsandboxed' in grades.csv and the feedback")

    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return _grade(parser, args)


def _grade(parser, args) -> int:
    from adamw_lab.grading.bank import EXERCISES
    from adamw_lab.grading.grader import grade_many

    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        parser.error("no such file: " + ", ".join(missing))
    folders = [str(p) for p in args.submissions if not p.is_file()]
    if folders:
        parser.error("not a file (give the notebooks, e.g. DIR/*.ipynb): " + ", ".join(folders))
    if args.exercise and args.exercise not in EXERCISES:
        parser.error(f"unknown exercise {args.exercise!r}; known: {', '.join(sorted(EXERCISES))}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    from adamw_lab.grading.sandbox import SandboxUnavailable

    paths = list(dict.fromkeys(p.resolve() for p in args.submissions))  # each file once
    try:
        results = grade_many(paths, args.out, jobs=args.jobs,
                             timeout=args.timeout, memory_mb=args.memory, exercise=args.exercise,
                             seed=args.seed, progress=not args.no_progress, sandboxed=not args.no_sandbox)
    except SandboxUnavailable as exc:
        parser.error(f"cannot sandbox student code: {exc}. Install bubblewrap (apt-get install bubblewrap), "
                     "or pass --no-sandbox to grade without isolation (recorded in the grades)")
    full = sum(r["total"] == r["max_total"] and r["max_total"] > 0 for r in results)
    flagged = sum(r["status"] != "ok" for r in results)
    print(f"graded {len(results)} submission(s): {full} with full marks, {flagged} with a status other than ok; "
          f"see {args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
