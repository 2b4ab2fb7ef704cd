"""adamw_lab: the code of the book 《AdamW 与解耦权重衰减》.

Submodules:
- ``reference``: NumPy float64 update rules that read like the book's formulas;
- ``plotting``: ``use_book_style()``, the book's figure style;
- ``notebook``: seeding, device choice and ``glue`` for the notebooks;
- ``optim``: ``AdamW``, ``AdamL2``, ``AdamWProx``, ``SGDW``, ``SGDL2`` (drop-ins
  for ``torch.optim``, batched sweeps with per-model ``lr``/``weight_decay``)
  and ``param_groups``; the kernels behind them are in ``functional``
  (per-tensor, foreach, compiled), ``cpp_kernel`` (fused C++, CPU) and
  ``triton_kernels`` (fused Triton, GPU).
"""
from adamw_lab import reference
from adamw_lab.plotting import use_book_style
from adamw_lab.notebook import best_device, glue, seed_everything
from adamw_lab.optim import AdamL2, AdamW, AdamWProx, SGDL2, SGDW, param_groups

__version__ = "0.1.0"

__all__ = ["reference", "use_book_style", "glue", "seed_everything", "best_device",
           "AdamW", "AdamL2", "AdamWProx", "SGDW", "SGDL2", "param_groups"]
