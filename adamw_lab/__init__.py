"""adamw_lab: the code of the book 《AdamW 与解耦权重衰减》.

Submodules:
- ``reference``: NumPy float64 update rules that read like the book's formulas;
- ``plotting``: ``use_book_style()``, the book's figure style;
- ``notebook``: seeding, device choice and ``glue`` for the notebooks.
"""
from adamw_lab import reference
from adamw_lab.plotting import use_book_style
from adamw_lab.notebook import best_device, glue, seed_everything

__version__ = "0.1.0"

__all__ = ["reference", "use_book_style", "glue", "seed_everything", "best_device"]
