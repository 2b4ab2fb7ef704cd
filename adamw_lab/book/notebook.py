"""Helpers for the book's notebooks: seeding, device choice, glue.

``glue`` is MyST-NB's protocol re-implemented in a few lines so that the
notebooks also run where ``myst_nb`` is not installed (Colab): the value is
displayed with ``scrapbook`` metadata that the book build picks up.
"""
from __future__ import annotations

import random

import numpy as np

GLUE_PREFIX = "application/papermill.record/"


def glue(name: str, value, display: bool = False) -> None:
    """Make ``value`` available to the book's prose as ``{glue:}`name```."""
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    mimebundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for reproducible cells."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def best_device():
    """``torch.device('cuda')`` when a GPU is present, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
