"""Keep the Colab setup cell of every notebook in sync with ``_config.yml``.

Every chapter and exercise notebook starts with one code cell, tagged
``colab-setup``, that installs ``adamw_lab`` from the repository when the
package is not importable (a no-op locally).  The repository URL lives once,
in ``_config.yml``; this tool writes it into the cell.

    python tools/nbsetup.py --check             # exit 1 if a notebook lacks the cell
    python tools/nbsetup.py --fix [NOTEBOOK...]  # insert or refresh the cell
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "colab-setup"
NOTEBOOK_DIRS = ("book", "exercises")


def repository_url() -> str:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"].rstrip("/")


def setup_source(url: str | None = None) -> str:
    url = url or repository_url()
    return (
        "# Colab setup: install adamw_lab (and what the notebooks need) when it is missing\n"
        "# (a no-op where it is installed, e.g. locally or in the book build).\n"
        "import importlib.util, subprocess, sys\n"
        'if importlib.util.find_spec("adamw_lab") is None:\n'
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "adamw-lab[notebooks] @ git+{url}"], check=True)'
    )


def setup_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(setup_source())
    cell.metadata["tags"] = [TAG, "remove-cell"]
    cell.outputs = []
    cell.execution_count = 1
    return cell


def all_notebooks() -> list[Path]:
    found = []
    for d in NOTEBOOK_DIRS:
        found += [p for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    return sorted(found)


def problem(path: Path) -> str | None:
    """Return why ``path``'s first cell is not the setup cell, or None."""
    nb = nbformat.read(path, as_version=4)
    if not nb.cells or nb.cells[0].cell_type != "code":
        return "first cell is not a code cell"
    first = nb.cells[0]
    if TAG not in first.metadata.get("tags", []):
        return f"first cell lacks the '{TAG}' tag"
    if first.source != setup_source():
        return "setup cell is out of date with _config.yml"
    return None


def fix(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    cell = setup_cell()
    if nb.cells and TAG in nb.cells[0].metadata.get("tags", []):
        cell.execution_count = nb.cells[0].execution_count or 1
        cell.id = nb.cells[0].get("id", cell.id)
        nb.cells[0] = cell
    else:
        nb.cells.insert(0, cell)
    nbformat.write(nb, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true", help="report notebooks without an up-to-date setup cell")
    group.add_argument("--fix", action="store_true", help="insert or refresh the setup cell")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook under book/ and exercises/")
    args = parser.parse_args(argv)
    paths = args.notebooks or all_notebooks()
    bad = 0
    for path in paths:
        if args.fix:
            fix(path)
        elif (why := problem(path)) is not None:
            print(f"{path}: {why}; run `python tools/nbsetup.py --fix {path}`")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
