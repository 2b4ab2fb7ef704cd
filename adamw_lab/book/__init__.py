"""Helpers of the book's chapters (``pip install "adamw-lab[book]"``).

- ``plotting``: ``use_book_style()``, the book's figure style (CJK font, colours);
- ``notebook``: ``seed_everything``, ``best_device`` and ``glue`` for the notebooks;
- ``experiments``: data, batched models and training loops of Part II;
- ``frontiers``: the experiments of the 前沿 chapter.

Nothing here is needed to train with ``adamw_lab.AdamW``; the core package
imports none of it.
"""
from adamw_lab.book.notebook import best_device, glue, seed_everything
from adamw_lab.book.plotting import COLORS, use_book_style

__all__ = ["use_book_style", "COLORS", "glue", "seed_everything", "best_device"]
