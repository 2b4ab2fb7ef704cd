"""adamw_lab: AdamW and decoupled weight decay, the code of the book 《AdamW 与解耦权重衰减》.

The core (``pip install adamw-lab``: torch and numpy, nothing else):

- ``optim``: ``AdamW``, ``AdamL2``, ``AdamWProx``, ``SGDW``, ``SGDL2`` (drop-ins
  for ``torch.optim``, batched sweeps with per-model ``lr``/``weight_decay``)
  and ``param_groups``; ``kernels`` is the one registry that picks the
  implementation of a group (``impl=``, ``foreach=``, ``fused=``) or says why it
  cannot run; the implementations are in ``functional`` (per-tensor, foreach,
  compiled), ``cpp_kernel`` (fused C++, CPU) and ``triton_kernels`` (fused
  Triton, GPU);
- ``variants``: AdamW with scheduled/independent/corrected decay and cautious decay;
- ``distributed``: launching ranks and splitting a batched sweep across them;
- ``conformance``: the cases of torch's own optimizer tests that adamw_lab is checked on;
- ``reference``: NumPy float64 update rules that read like the book's formulas;
- ``theory``: the closed forms of Part I (half-life, λ*, proximal gap, ...);
- ``bench``: ``python -m adamw_lab.bench``, every implementation against torch.

Subpackages with their own extras: ``adamw_lab.book`` (``[book]``: plotting,
notebook glue, the experiments of Part II) and ``adamw_lab.grading``
(``[grading]``: the exercise checks and the batch grader).
"""
from adamw_lab import reference
from adamw_lab.optim import AdamL2, AdamW, AdamWProx, SGDL2, SGDW, param_groups

__version__ = "0.1.0"

__all__ = ["reference", "AdamW", "AdamL2", "AdamWProx", "SGDW", "SGDL2", "param_groups"]
