"""Notebooks execute headless without hanging, and a failing notebook fails the build.

The hang these tests guard against: ``ipywidgets.interact`` writes its figure
into an ``Output`` widget; nbclient (``jupyter execute``, jupyter-cache, the
book build) imitates that widget's frontend by sending a ``comm_msg`` on the
shell socket for every output, while it waits on the same socket for the
cell's ``execute_reply``.  If the reply has already arrived (the client was
busy, e.g. on a loaded machine), the send consumes ZeroMQ's edge-triggered
wake-up and the wait ends only at the cell timeout.  A client made slow on
purpose reproduces it every time; ``adamw_lab.book.explorer`` avoids it.
"""
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipywidgets")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for d in ("book", "exercises") for p in (ROOT / d).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and "_build" not in p.parts)
CELL_TIMEOUT = 8        # seconds; every cell below needs well under one second
SLOW = 1.0              # seconds the client spends on each figure: a busy machine

DRAW = """
import matplotlib.pyplot as plt
import ipywidgets as widgets

def draw(a):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, a])
    plt.show()
    print(f"slope {a:.2f}")
"""


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


class SlowClient(nbclient.NotebookClient):
    """A client that takes ``SLOW`` seconds over every figure, as a loaded machine does."""

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "display_data":
            time.sleep(SLOW)            # blocks the event loop, like decoding a large PNG
        return super().process_message(msg, cell, cell_index)


def _run(nb, client=SlowClient):
    """Execute ``nb``; return the seconds the slowest cell took from request to reply."""
    c = client(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=True,
               resources={"metadata": {"path": str(ROOT)}})
    c.execute()
    waits = []
    for i in range(1, len(nb.cells)):
        # the next cell's request leaves only after this cell's reply was read
        waits.append(_t(nb.cells[i].metadata["execution"]["iopub.status.busy"])
                     - _t(nb.cells[i - 1].metadata["execution"]["shell.execute_reply"]))
    return max(waits)


def _t(stamp):
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_interact_reproduces_the_lost_reply():
    """Control: the harness detects the hang (the next cell starts only at the timeout)."""
    nb = _notebook(DRAW, "widgets.interact(draw, a=widgets.FloatSlider(value=1.0, min=0, max=2))", "1")
    gap = _run(nb)
    assert gap > CELL_TIMEOUT - 1, f"expected the reply to be read only at the timeout, got {gap:.1f} s"


@pytest.mark.parametrize("repeat", range(3))
def test_explorer_never_loses_the_reply(repeat):
    nb = _notebook(DRAW, "from adamw_lab.book.explorer import explorer\n"
                         "box = explorer(draw, a=widgets.FloatSlider(value=1.0, min=0, max=2))", "1")
    gap = _run(nb)
    assert gap < CELL_TIMEOUT / 2, f"reply read {gap:.1f} s late: the client waited for a lost message"
    outputs = nb.cells[1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure is missing"


def test_moving_a_slider_redraws_the_figure_and_text():
    nb = _notebook(DRAW, "from adamw_lab.book.explorer import explorer\n"
                         "box = explorer(draw, a=widgets.FloatSlider(value=1.0, min=0, max=2))",
                   "box.children[0].value = 2.0")
    before = _notebook(DRAW, nb.cells[1].source)
    _run(before, client=nbclient.NotebookClient)
    _run(nb, client=nbclient.NotebookClient)

    def png(cell):
        return [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]

    assert png(nb.cells[1]) and png(nb.cells[1]) != png(before.cells[1]), "the figure was not redrawn"
    assert not nb.cells[2].outputs, "the redraw must replace the figure, not add a new output"


def test_explorer_rejects_bad_controls():
    from adamw_lab.book.explorer import explorer

    with pytest.raises(ValueError, match="at least one control"):
        explorer(lambda: None)
    with pytest.raises(TypeError, match="'a' is a float"):
        explorer(lambda a: None, a=1.0)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_notebook_uses_an_output_widget(path):
    """``interact``/``interactive``/``Output`` are the one cause of the lost reply: use ``explorer``."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    bad = re.compile(r"\binteract(ive|_manual|ive_output)?\s*\(|widgets\.Output\s*\(|@interact")
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and bad.search(src):
            pytest.fail(f"cell {i} uses an ipywidgets Output widget (interact); headless runs can "
                        "hang on it: use adamw_lab.book.explorer.explorer(draw, **controls)")


@pytest.mark.skipif(shutil.which("jupyter-book") is None, reason="jupyter-book not installed")
def test_failing_notebook_fails_the_build_and_names_the_cell(tmp_path):
    """The book's own execution settings turn an error in a cell into a failed build."""
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    small = {"title": "t", "execute": cfg["execute"], "only_build_toc_files": True,
             "sphinx": {"config": {k: v for k, v in cfg["sphinx"]["config"].items() if k.startswith("nb_")}}}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(small), encoding="utf-8")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: broken\n",
                                       encoding="utf-8")
    (tmp_path / "intro.md").write_text("# intro\n", encoding="utf-8")
    nbformat.write(_notebook("x = 1", "raise RuntimeError('boom in the second cell')"), tmp_path / "broken.ipynb")
    r = subprocess.run([shutil.which("jupyter-book"), "build", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode != 0, "a notebook that raises must fail the build\n" + log[-2000:]
    assert "broken" in log and "boom in the second cell" in log, log[-2000:]


GLUE_REF = re.compile(r"\{glue(?::[a-z]+)?\}`([^`:]+)(?::[^`]*)?`")
BOOK_NOTEBOOKS = [p for p in NOTEBOOKS if "book" in p.relative_to(ROOT).parts[:1]]


@pytest.mark.parametrize("path", BOOK_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_glue_reference_has_a_stored_value(path):
    """A missing glue key only warns in the build: catch it here, naming the key."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    stored = {o["metadata"]["scrapbook"]["name"] for c in nb["cells"] for o in c.get("outputs", [])
              if "scrapbook" in o.get("metadata", {})}
    used = {m.group(1) for c in nb["cells"] if c["cell_type"] == "markdown"
            for m in GLUE_REF.finditer("".join(c["source"])) if "::" not in m.group(1)}
    missing = sorted(used - stored)
    assert not missing, f"{path.name}: the prose uses glue keys no executed cell stores: {missing}"
