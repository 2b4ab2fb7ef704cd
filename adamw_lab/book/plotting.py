"""The book's plotting style: one call, CJK text without missing glyphs.

Colab and most CI machines have no Chinese font, so matplotlib would draw
empty boxes and warn ``Glyph ... missing from font``.  The ``mplfonts``
package ships Noto Sans CJK SC; we register that file with matplotlib's font
manager directly (no ``mplfonts init`` step, nothing written outside the
environment) and put it first in the sans-serif list.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
from matplotlib import font_manager

CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"
CJK_FONT_NAME = "Noto Sans CJK SC"

# Colours used for the same method in every figure of the book.
COLORS = {
    "AdamW": "#1f77b4",
    "Adam+L2": "#d62728",
    "Adam": "#7f7f7f",
    "SGD": "#2ca02c",
    "SGDW": "#9467bd",
}


def cjk_font_path() -> Path:
    """The bundled CJK font file (also cut into the HTML explorers' web font)."""
    import mplfonts  # imported here: only the style needs it

    path = Path(mplfonts.__file__).parent / "fonts" / CJK_FONT_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: reinstall the font package with "
            "`pip install --force-reinstall mplfonts`."
        )
    return path


def _register_cjk_font() -> str:
    """Register the bundled CJK font and return its family name."""
    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def use_book_style(dpi: int = 110) -> None:
    """Set the book's matplotlib style: CJK font, sizes, grid, colours."""
    family = _register_cjk_font()
    mpl.rcParams.update(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [family, "DejaVu Sans"],
            "axes.unicode_minus": False,  # the CJK font has no U+2212 minus
            "mathtext.fontset": "dejavusans",
            "figure.dpi": dpi,
            "savefig.dpi": dpi,
            "figure.figsize": (6.4, 4.0),
            "figure.constrained_layout.use": True,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "axes.prop_cycle": mpl.cycler(color=list(COLORS.values())),
        }
    )
