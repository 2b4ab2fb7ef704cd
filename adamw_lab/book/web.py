r"""Explorers that run in the built HTML book: sliders, a formula and a Plotly figure, no kernel.

A notebook cell calls ``page_explorer(compute, sliders, formula=..., ...)``.
It evaluates ``compute`` (the same function the chapter's static figure and
ipywidgets explorer use) at every point of the slider grid and returns an
HTML output that holds those numbers as JSON.  In the book, the Sphinx hook
``setup`` below loads ``plotly.min.js`` (from the ``plotly`` wheel) and
``adamw-explorer.js`` from ``_static`` on the pages that have an explorer,
and the script turns each output into sliders and a figure that redraws on
every move.  Nothing is fetched from the network; in Jupyter the output is a
short note (the ipywidgets explorer next to it is the live one there).

Values shown beside the sliders (``readout``) are calls of functions of
``adamw_lab`` whose dotted name is stored with them, so a test can compute
them again from the package at any slider setting.

Adding one to a chapter: a code cell tagged ``remove-input`` right after the
chapter's static figure (or its ipywidgets explorer), e.g. ::

    from adamw_lab.book.web import page_explorer, readout, ref

    page_explorer(
        lambda lam, eps: {name: (t, ws) for name, ws in paths(lam, eps).items()},
        {"lam": ("λ", np.logspace(-3, 0, 13), 0.1), "eps": ("ε", np.logspace(-8, 0, 9), 1e-8)},
        formula=r"w_t=(1-\eta\lambda)^t w_0", xlabel="步数 t", ylabel="w",
        readouts=[readout("半衰期 t½", T.half_life_exact, lr=1e-3, weight_decay=ref("lam"))],
    )

For experiment results, ``compute`` looks the curves up in what the chapter
has already run (a dict keyed by the slider values).  Keep the grid small:
the page carries every setting's curves (rounded to 4 digits, shared arrays
stored once); the browser test in ``tests/test_book.py`` finds it by itself.
"""
from __future__ import annotations

import html
import importlib
import itertools
import json
import math
from pathlib import Path

import numpy as np

from adamw_lab.book.plotting import COLORS, cjk_font_path

JS_FILE = "adamw-explorer.js"
PLOTLY_FILE = "plotly.min.js"
FONT_FILE = "adamw-explorer-font.woff"   # the static figures' CJK font, cut to the explorers' characters
MARKER = "adamw-explorer"          # class of the explorer's root element; the script sets the font
NOTE = "（交互图：在本书的网页版中拖动滑块即可重绘；在 Jupyter/Colab 中请用上一格的控件。）"


class ref(str):
    """A readout argument that takes the current value of the slider named ``name``."""


def readout(label: str, func, **kwargs) -> dict:
    """A value shown beside the sliders: ``func(**kwargs)`` with ``ref("x")`` replaced by slider x.

    ``func`` must be a function of ``adamw_lab`` returning a number, so the
    shown value can be checked against the package.
    """
    module = getattr(func, "__module__", "") or ""
    if not module.startswith("adamw_lab") or "<locals>" in func.__qualname__:
        raise ValueError(f"readout {label!r}: {func!r} is not a top-level function of adamw_lab; "
                         "readouts must be package functions (e.g. adamw_lab.theory.half_life_exact)")
    return {"label": label, "fn": f"{module}.{func.__qualname__}", "func": func, "kwargs": kwargs}


def _resolve(value, setting):
    if isinstance(value, ref):
        return setting[str(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, setting) for v in value)
    return value


def _to_json(value):
    if isinstance(value, ref):
        return {"slider": str(value)}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def call_readout(spec: dict, setting: dict) -> float:
    """The package's value of a readout as stored in a page (``fn``, ``args``) at ``setting``."""
    module, _, name = spec["fn"].rpartition(".")
    func = getattr(importlib.import_module(module), name)

    def resolve(v):
        if isinstance(v, dict) and set(v) == {"slider"}:
            return setting[v["slider"]]
        return [resolve(x) for x in v] if isinstance(v, list) else v

    args = {k: resolve(v) for k, v in spec["args"].items()}
    if "betas" in args:
        args["betas"] = tuple(args["betas"])
    return float(func(**args))


def _slider_text(v: float) -> str:
    """How a slider shows its value: 2000, not 2e+03; 0.001 and 1e-08 as usual."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e6 else f"{v:.3g}"


def _rounded(values, digits: int) -> list:
    arr = np.asarray(values, dtype=float).ravel()
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in arr]


def _axis(title: str, rng) -> dict:
    return {"title": {"text": title}, "range": rng, "showgrid": True, "gridcolor": "rgba(0,0,0,0.09)",
            "zeroline": False, "showline": True, "linecolor": "#444", "ticks": "outside", "mirror": False}


def explorer_spec(compute, sliders: dict, *, formula: str, xlabel: str, ylabel: str, title: str = "",
                  readouts=(), styles=None, equal_axes: bool = False, xlog: bool = False, ylog: bool = False,
                  xrange=None, yrange=None, digits: int = 4, height: int = 380) -> dict:
    """Evaluate ``compute`` over the slider grid and return the JSON-ready spec of the explorer.

    ``sliders``: ``{kwarg: (label, grid values, default)}`` in display order;
    the label is the formula's symbol (``"η"``, ``"λ"``, ``"β₁"`` …) and the
    default must be one of the grid values.  ``compute(**setting)`` returns
    ``{trace name: (x, y)}`` with the same names at every setting; a name of
    ``COLORS`` gets the book's colour, others their ``styles`` entry
    (Plotly ``line`` options, e.g. ``{"color": "black", "dash": "dot"}``; a
    style with ``"mode": "markers"`` draws points, its ``"marker"`` entry the
    Plotly marker options).  ``xlog``/``ylog`` draw an axis on a log scale
    (decade ticks); ``xrange``/``yrange`` ``(low, high)`` in data units fix an
    axis instead of fitting every setting.
    """
    if not sliders:
        raise ValueError("page_explorer needs at least one slider, e.g. {'lam': ('λ', [0.1, 0.2], 0.1)}")
    names, specs = list(sliders), []
    for name, (label, values, default) in sliders.items():
        values = [float(v) for v in values]
        matches = [i for i, v in enumerate(values) if math.isclose(v, default, rel_tol=1e-9, abs_tol=1e-15)]
        if not matches:
            raise ValueError(f"slider {name!r}: default {default!r} is not one of its grid values {values}; "
                             "add it to the grid")
        specs.append({"name": name, "label": label, "values": values, "default": matches[0],
                      "text": [_slider_text(v) for v in values]})
    readouts = list(readouts)
    for r in readouts:
        unknown = {str(v) for v in r["kwargs"].values() if isinstance(v, ref)} - set(names)
        if unknown:
            raise ValueError(f"readout {r['label']!r} refers to unknown slider(s) {sorted(unknown)}; sliders: {names}")

    arrays, index = [], {}

    def intern(values) -> int:
        key = json.dumps(_rounded(values, digits))
        if key not in index:
            index[key] = len(arrays)
            arrays.append(json.loads(key))
        return index[key]

    trace_names, frames, shown = None, [], [[] for _ in readouts]
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for combo in itertools.product(*(s["values"] for s in specs)):
        setting = dict(zip(names, combo))
        traces = compute(**setting)
        if trace_names is None:
            trace_names = list(traces)
        elif list(traces) != trace_names:
            raise ValueError(f"compute returned traces {list(traces)} at {setting}, but {trace_names} before; "
                             "return the same names at every setting")
        frames.append([[intern(x), intern(y)] for x, y in traces.values()])
        for x, y in traces.values():
            for k, a in enumerate((x, y)):
                a = np.asarray(a, dtype=float)
                a = a[np.isfinite(a)]
                if a.size:
                    lo[k], hi[k] = min(lo[k], a.min()), max(hi[k], a.max())
        for out, r in zip(shown, readouts):
            out.append(float(f"{float(r['func'](**{k: _resolve(v, setting) for k, v in r['kwargs'].items()})):.6g}"))
    pad = 0.04 * (hi - lo) + 1e-12
    styles = styles or {}
    traces = []
    for name in trace_names:
        if name not in COLORS and name not in styles:
            raise ValueError(f"trace {name!r} has no colour: name it after a method of COLORS or pass styles={{{name!r}: {{...}}}}")
        line = dict(styles.get(name, {}))
        trace = {"name": name, "type": "scatter", "mode": line.pop("mode", "lines")}
        if "marker" in line:
            trace["marker"] = {"color": line.get("color", COLORS.get(name)), **line.pop("marker")}
        trace["line"] = {"color": COLORS.get(name), "width": 2, **line}
        traces.append(trace)
    layout = {
        "title": {"text": title, "font": {"size": 14}}, "height": height,
        "font": {"size": 13, "color": "#222"},
        "xaxis": _axis(xlabel, [lo[0] - pad[0], hi[0] + pad[0]]),
        "yaxis": _axis(ylabel, [lo[1] - pad[1], hi[1] + pad[1]]),
        "legend": {"bgcolor": "rgba(255,255,255,0.7)"},
        "margin": {"l": 60, "r": 20, "t": 40 if title else 16, "b": 50},
        "plot_bgcolor": "white", "paper_bgcolor": "white",
    }
    for k, (axis, log, fixed) in enumerate((("xaxis", xlog, xrange), ("yaxis", ylog, yrange))):
        if fixed is not None:
            layout[axis]["range"] = [float(v) for v in fixed]
        if log:   # Plotly's log-axis range is in decades
            low, high = fixed if fixed is not None else (lo[k], hi[k])
            if not 0 < low < high:
                raise ValueError(f"{axis[0]}log needs positive {axis[0]} values (or a {axis[0]}range of positive "
                                 f"numbers); got {low}..{high}")
            span = 0.0 if fixed is not None else 0.04 * (math.log10(high) - math.log10(low))
            layout[axis].update(type="log", dtick=1, exponentformat="power",
                                range=[math.log10(low) - span, math.log10(high) + span])
    if equal_axes:
        layout["yaxis"]["scaleanchor"] = "x"
    return {
        "formula": formula, "sliders": specs, "traces": traces, "arrays": arrays, "frames": frames,
        "readouts": [{"label": r["label"], "fn": r["fn"], "args": {k: _to_json(v) for k, v in r["kwargs"].items()}, "values": v}
                     for r, v in zip(readouts, shown)],
        "layout": layout,
    }


class PageExplorer:
    """The output of ``page_explorer``: HTML for the book, a note elsewhere."""

    def __init__(self, spec: dict):
        self.spec = spec

    def html(self) -> str:
        data = json.dumps(self.spec, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
        symbols = "、".join(s["label"] for s in self.spec["sliders"])
        return (f'<div class="{MARKER}">'
                f'<div class="{MARKER}-formula math notranslate nohighlight">\\[{html.escape(self.spec["formula"])}\\]</div>'
                f'<p class="{MARKER}-note">{html.escape(NOTE)}（滑块：{symbols}）</p>'
                f'<script type="application/json" class="{MARKER}-data">{data}</script></div>')

    def _repr_mimebundle_(self, include=None, exclude=None):
        symbols = "、".join(s["label"] for s in self.spec["sliders"])
        return {"text/html": self.html(), "text/plain": f"交互图（网页版），滑块：{symbols}"}


def page_explorer(compute, sliders: dict, **options) -> PageExplorer:
    """An explorer for the HTML book (see ``explorer_spec`` for the arguments); display it as a cell's result."""
    return PageExplorer(explorer_spec(compute, sliders, **options))


# --- the Sphinx side ----------------------------------------------------------------


def _add_scripts(app, pagename, templatename, context, doctree):
    """Load Plotly and the explorer script on the pages that have an explorer, nowhere else."""
    if MARKER in context.get("body", ""):
        app.add_js_file(PLOTLY_FILE, defer="defer")
        app.add_js_file(JS_FILE, defer="defer")


def _drop_widget_state(app, pagename, templatename, context, doctree):
    """The notebooks' ipywidgets are removed from the pages: their stored state (~20 kB a page) is dead weight."""
    scripts = context.get("script_files", [])
    scripts[:] = [s for s in scripts if getattr(s, "attributes", {}).get("type") != "application/vnd.jupyter.widget-state+json"]


def _copy_scripts(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    import plotly

    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    source = Path(plotly.__file__).parent / "package_data" / PLOTLY_FILE
    if not source.exists():
        raise FileNotFoundError(f"{source} is missing: reinstall plotly (`pip install --force-reinstall plotly`)")
    shutil.copyfile(source, static / PLOTLY_FILE)
    shutil.copyfile(Path(__file__).with_name(JS_FILE), static / JS_FILE)
    _write_font_subset(Path(app.outdir), static / FONT_FILE)


def _write_font_subset(html_dir: Path, target: Path) -> None:
    """Cut the book's CJK font to the characters of every explorer's data (tens of kB, not 16 MB)."""
    from fontTools import subset

    text = set(map(chr, range(0x20, 0x7F)))
    start = f'<script type="application/json" class="{MARKER}-data">'
    for page in html_dir.rglob("*.html"):
        for chunk in page.read_text(encoding="utf-8").split(start)[1:]:
            text |= set(chunk.split("</script>", 1)[0])
    options = subset.Options()
    options.flavor = "woff"
    font = subset.load_font(str(cjk_font_path()), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(text)))
    subsetter.subset(font)
    subset.save_font(font, str(target), options)


def setup(app):
    """Sphinx extension (``sphinx: extra_extensions: [adamw_lab.book.web]`` in ``_config.yml``)."""
    app.connect("html-page-context", _add_scripts)
    app.connect("html-page-context", _drop_widget_state, priority=900)   # after myst-nb adds it
    app.connect("build-finished", _copy_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
