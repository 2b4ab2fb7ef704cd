"""The in-page explorers' data (adamw_lab.book.web), without building the book.

The browser side (sliders redraw offline, readouts equal the package's values)
is tested on the built book in test_book.py, which builds it once.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from adamw_lab import reference as R
from adamw_lab import theory as T
from adamw_lab.book import COLORS
from adamw_lab.book.web import call_readout, explorer_spec, page_explorer, readout, ref


def decay_paths(lam, eps, eta=1e-3, steps=50):
    """Zero-gradient AdamW and Adam+L2 from w0 = 1 with the NumPy reference rules."""
    out = {}
    for name, step in [("AdamW", R.adamw_step), ("Adam+L2", R.adam_l2_step)]:
        w, m, v, ws = 1.0, 0.0, 0.0, [1.0]
        for t in range(1, steps + 1):
            w, m, v = step(w, 0.0, m, v, t, lr=eta, weight_decay=lam, eps=eps)
            ws.append(w)
        out[name] = (np.arange(steps + 1), np.array(ws))
    return out


SLIDERS = {"lam": ("λ", [0.1, 1.0, 10.0], 1.0), "eps": ("ε", [1e-8, 1e-2, 1.0], 1e-8)}
HALF_LIFE = readout("半衰期", T.half_life_exact, lr=1e-3, weight_decay=ref("lam"))


def frame_of(spec, setting):
    frame = 0
    for s in spec["sliders"]:
        frame = frame * len(s["values"]) + s["values"].index(setting[s["name"]])
    return frame


@pytest.mark.parametrize("lam,eps", [(0.1, 1e-8), (1.0, 1e-2), (10.0, 1.0), (10.0, 1e-8)])
def test_frames_hold_the_reference_numbers_and_readouts_the_package_values(lam, eps):
    spec = explorer_spec(decay_paths, SLIDERS, formula=r"w_t=(1-\eta\lambda)^t w_0", xlabel="t", ylabel="w",
                         readouts=[HALF_LIFE])
    frame = frame_of(spec, {"lam": lam, "eps": eps})
    for (name, (x, y)), (xi, yi) in zip(decay_paths(lam, eps).items(), spec["frames"][frame]):
        np.testing.assert_allclose(spec["arrays"][yi], y, rtol=5e-4, atol=1e-12, err_msg=name)
        np.testing.assert_array_equal(spec["arrays"][xi], x)
    # AdamW is exactly the EMA (1 - eta*lambda)^t whatever eps
    np.testing.assert_allclose(spec["arrays"][spec["frames"][frame][0][1]], T.ema_weight(1e-3, lam, np.arange(51)), rtol=5e-4)
    stored = json.loads(json.dumps(spec["readouts"][0]))        # as the page holds it
    assert stored["values"][frame] == pytest.approx(T.half_life_exact(1e-3, lam), rel=1e-6)
    assert call_readout(stored, {"lam": lam, "eps": eps}) == T.half_life_exact(1e-3, lam)
    assert [t["line"]["color"] for t in spec["traces"]] == [COLORS["AdamW"], COLORS["Adam+L2"]]
    assert spec["sliders"][0]["default"] == 1 and spec["sliders"][0]["text"] == ["0.1", "1", "10"]


def test_identical_arrays_are_stored_once():
    spec = explorer_spec(decay_paths, SLIDERS, formula="w", xlabel="t", ylabel="w")
    # one shared x, 3 AdamW curves (independent of eps), at most 9 Adam+L2 curves
    assert len(spec["arrays"]) <= 1 + 3 + 9
    assert len({xi for frame in spec["frames"] for xi, _ in frame}) == 1


def test_readout_arguments_may_nest_slider_values():
    r = readout("界", T.adam_update_bound, betas=(ref("beta1"), 0.999), t=10)
    spec = explorer_spec(lambda beta1: {"AdamW": ([0, 1], [0, beta1])}, {"beta1": ("β₁", [0.5, 0.9], 0.9)},
                         formula="b", xlabel="t", ylabel="b", readouts=[r])
    stored = json.loads(json.dumps(spec["readouts"][0]))
    assert stored["args"]["betas"] == [{"slider": "beta1"}, 0.999]
    assert call_readout(stored, {"beta1": 0.5}) == pytest.approx(T.adam_update_bound((0.5, 0.999), 10))


def test_page_html_keeps_the_data_inert_and_the_formula_for_mathjax():
    out = page_explorer(lambda lam: {"AdamW": ([0, 1], [1, 1 - lam])}, {"lam": ("λ", [0.1], 0.1)},
                        formula=r"a<b", xlabel="</script><b>", ylabel="w")
    html = out._repr_mimebundle_()["text/html"]
    assert "</script><b>" not in html and html.count("</script>") == 1
    assert r"\[a&lt;b\]" in html and 'class="adamw-explorer-formula math' in html
    assert "λ" in out._repr_mimebundle_()["text/plain"]


@pytest.mark.parametrize("kwargs,message", [
    (dict(sliders={"lam": ("λ", [0.1, 1.0], 0.5)}), "not one of its grid values"),
    (dict(sliders={}), "at least one slider"),
    (dict(readouts=[readout("x", T.half_life_exact, lr=1e-3, weight_decay=ref("eta"))]), "unknown slider"),
    (dict(compute=lambda lam: {"Muon": ([0], [lam])}), "has no colour"),
    (dict(compute=lambda lam: {"AdamW" if lam < 1 else "SGD": ([0], [lam])}), "same names"),
    (dict(compute=lambda lam: {"AdamW": ([0, 1], [lam, lam])}, xlog=True), "xlog needs positive"),
])
def test_bad_specs_are_refused_with_the_fix(kwargs, message):
    args = dict(compute=lambda lam: {"AdamW": ([0], [lam])}, sliders={"lam": ("λ", [0.1, 1.0], 0.1)})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        explorer_spec(args.pop("compute"), args.pop("sliders"), formula="f", xlabel="x", ylabel="y", **args)


def test_log_axis_and_fixed_ranges():
    """A log x axis spans the data in decades; fixed ranges are taken in data units."""
    compute = lambda lam: {"AdamW": ([1e-3, 1e-1], [lam, 2 * lam])}
    spec = explorer_spec(compute, {"lam": ("λ", [0.1, 1.0], 0.1)}, formula="f", xlabel="λ", ylabel="y", xlog=True)
    x = spec["layout"]["xaxis"]
    assert x["type"] == "log" and x["range"][0] < -3 < -1 < x["range"][1] < -0.8
    spec = explorer_spec(compute, {"lam": ("λ", [0.1, 1.0], 0.1)}, formula="f", xlabel="λ", ylabel="y",
                         xlog=True, xrange=(1e-4, 1.0), yrange=(0, 5))
    assert spec["layout"]["xaxis"]["range"] == pytest.approx([-4, 0]) and spec["layout"]["yaxis"]["range"] == [0, 5]
    spec = explorer_spec(compute, {"lam": ("λ", [0.1, 1.0], 0.1)}, formula="f", xlabel="λ", ylabel="y",
                         ylog=True, yrange=(0.01, 10))
    assert spec["layout"]["yaxis"]["type"] == "log" and spec["layout"]["yaxis"]["range"] == pytest.approx([-2, 1])
    assert spec["layout"]["xaxis"].get("type") is None


def test_marker_styles_and_slider_text():
    """A style with mode "markers" draws points; integer slider values read 2000, not 2e+03, and never -0."""
    compute = lambda T: {"AdamW": ([0, T], [0, 1]), "measured": ([T], [0.5])}
    spec = explorer_spec(compute, {"T": ("T", [-0.0, 500, 2000, 1e-8], 2000)}, formula="f", xlabel="t", ylabel="y",
                         styles={"measured": {"mode": "markers", "color": "black", "marker": {"symbol": "diamond"}}})
    assert spec["sliders"][0]["text"] == ["0", "500", "2000", "1e-08"]
    adamw, measured = spec["traces"]
    assert adamw["mode"] == "lines" and "marker" not in adamw
    assert measured["mode"] == "markers" and measured["marker"] == {"color": "black", "symbol": "diamond"}
    assert "mode" not in measured["line"] and "marker" not in measured["line"]


def test_readouts_must_be_package_functions():
    with pytest.raises(ValueError, match="not a top-level function of adamw_lab"):
        readout("x", np.sqrt, x=ref("lam"))
    with pytest.raises(ValueError, match="not a top-level function of adamw_lab"):
        readout("x", lambda lam: lam, lam=ref("lam"))
