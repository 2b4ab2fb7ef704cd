"""Slider explorers for the book's notebooks, safe to execute without a frontend.

``explorer(draw, **controls)`` is a drop-in for ``ipywidgets.interact(draw,
**controls)``: it shows the controls and the figure ``draw`` makes, and
redraws the figure when a control moves.

Why not ``interact`` itself: ``interact`` writes its figure into an
``ipywidgets.Output`` widget.  Headless runners (nbclient, so ``jupyter
execute``, jupyter-cache and the book build) imitate that widget's frontend
and answer every output it receives with a ``comm_msg`` sent on the shell
socket, while the same runner is waiting on that socket for the cell's
``execute_reply``.  When the reply is already there (the runner was busy
with the figure, e.g. on a loaded machine), that send consumes ZeroMQ's
edge-triggered wake-up and the wait only ends at the cell timeout (never
without one).  Here the figure is an ordinary display output updated by its
display id, so no runner ever has to answer anything.
"""
from __future__ import annotations


def _render(draw, values):
    """Call ``draw(**values)`` and return its figures' display bundles and printed text."""
    import matplotlib.pyplot as plt
    from IPython.utils.capture import capture_output

    with capture_output(stdout=True, stderr=False, display=True) as cap:
        draw(**values)
        if plt.get_fignums():
            plt.show()          # the inline backend displays and closes open figures
    return [(o.data, o.metadata) for o in cap.outputs], cap.stdout


def explorer(draw, **controls):
    """Show ``controls`` (ipywidgets with a ``value``) and the figure of ``draw(**values)``.

    ``draw`` draws with matplotlib (it may call ``plt.show()``); text it
    prints is shown under the figure.  Returns the ``VBox`` of controls.
    """
    import html

    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ValueError("explorer needs at least one control, e.g. eta=widgets.FloatSlider(...)")
    for name, w in controls.items():
        if not hasattr(w, "value"):
            raise TypeError(f"control {name!r} is a {type(w).__name__}; pass an ipywidgets widget "
                            "with a value (FloatSlider, SelectionSlider, ...)")

    def values():
        return {k: w.value for k, w in controls.items()}

    box = widgets.VBox(list(controls.values()))
    text = widgets.HTML()
    display(box)
    bundles, printed = _render(draw, values())
    handles = [display(data, metadata=meta, raw=True, display_id=True) for data, meta in bundles]
    text.value = f"<pre>{html.escape(printed)}</pre>" if printed else ""
    display(text)

    def update(_change=None):
        new, out = _render(draw, values())
        for h, (data, meta) in zip(handles, new):
            h.update(data, metadata=meta, raw=True)
        text.value = f"<pre>{html.escape(out)}</pre>" if out else ""

    for w in controls.values():
        w.observe(update, names="value")
    return box
