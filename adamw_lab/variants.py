"""Weight-decay variants of AdamW proposed after 2019 (Part IV of the book, 新进展).

Both optimizers are :class:`adamw_lab.AdamW` with a different decay; the Adam
step itself (moments, bias correction, every ``impl``, batched sweeps) is
AdamW's, reached through its public ``step``.  With ``η_t`` the group's current
``lr`` (what a schedule writes) and ``η_max`` its peak (``max_lr``):

- :class:`ScheduledDecayAdamW` with ``decay=``

  * ``"standard"``     ``w ← (1 − η_t λ) w − η_t u``  (``torch.optim.AdamW``);
  * ``"independent"``  ``w ← (1 − (η_t/η_max) λ) w − η_t u``: λ is not multiplied
    by the peak learning rate, only by the schedule (Loshchilov & Hutter's
    Algorithm 2; Wortsman et al. 2023), so changing ``lr`` leaves the decay alone;
  * ``"corrected"``    ``w ← (1 − (η_t²/η_max) λ) w − η_t u``: decay ∝ η_t²
    (Defazio et al. 2025, AdamC), which keeps the equilibrium norm of a
    normalised layer constant while the schedule anneals.

  All three are the decoupled decay ``1 − η_t λ_eff`` with an effective
  ``λ_eff`` (``λ``, ``λ/η_max``, ``λ η_t/η_max``), so every implementation of
  AdamW, the fused kernels included, runs them unchanged.
- :class:`CautiousAdamW`: decay only the coordinates where the update and the
  weight agree in sign, ``w ← w − η_t u − η_t λ·1[u ⊙ w > 0] ⊙ w``
  (Chen et al. 2025, cautious weight decay).

Here ``u = m̂/(√v̂+ε)``.  NumPy references: :mod:`adamw_lab.reference_variants`.
"""
from __future__ import annotations

import math

import torch

from adamw_lab.optim import AdamW

DECAYS = ("standard", "independent", "corrected")


def _per_model(x, p):
    """``x`` (float or 1-D per-model tensor) shaped to broadcast against parameter ``p``."""
    if isinstance(x, torch.Tensor) and x.dim() == 1:
        return x.to(p.device, p.dtype).reshape((-1,) + (1,) * (p.dim() - 1))
    return x


class ScheduledDecayAdamW(AdamW):
    """AdamW whose decay follows the schedule differently: ``decay`` in :data:`DECAYS`.

    ``decay`` may also be set per parameter group (``{"params": ..., "decay":
    "standard"}``), e.g. corrected decay on normalised layers only, as AdamC does.

    ``max_lr`` (float or per-model tensor, > 0) is the peak learning rate
    ``η_max``; by default each group's ``lr`` when the optimizer is built, so a
    scheduler that lowers ``lr`` afterwards needs nothing else.  Every other
    argument is :class:`adamw_lab.AdamW`'s.
    """

    def __init__(self, params, lr=1e-3, *, decay: str = "corrected", max_lr=None, **kwargs):
        self.decay_rule = decay
        self._max_lr = max_lr
        super().__init__(params, lr=lr, **kwargs)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("decay", self.decay_rule)
        if group["decay"] not in DECAYS:
            raise ValueError(f"Invalid decay: {group['decay']!r} (choose from {DECAYS})")
        peak = group.get("max_lr", group["lr"] if self._max_lr is None else self._max_lr)
        peak = peak.clone() if isinstance(peak, torch.Tensor) else float(peak)
        bad = (~torch.isfinite(peak) | (peak <= 0)).any() if isinstance(peak, torch.Tensor) \
            else not (math.isfinite(peak) and peak > 0)
        if bad:
            raise ValueError(f"Invalid max_lr: {peak} (the peak learning rate must be finite and "
                             f"> 0; pass max_lr= when the initial lr is 0, e.g. under warm-up)")
        group["max_lr"] = peak

    def effective_weight_decay(self, group):
        """``λ_eff`` such that this step's decay is ``1 − lr·λ_eff``."""
        wd, lr, peak = group["weight_decay"], group["lr"], group["max_lr"]
        if group["decay"] == "independent":
            return wd / peak
        if group["decay"] == "corrected":
            return wd * lr / peak
        return wd

    @torch.no_grad()
    def step(self, closure=None):
        saved = [group["weight_decay"] for group in self.param_groups]
        try:
            for group in self.param_groups:
                group["weight_decay"] = self.effective_weight_decay(group)
            return super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, saved):
                group["weight_decay"] = wd


class CautiousAdamW(AdamW):
    """AdamW that decays ``w_i`` only where ``sign(u_i) = sign(w_i)`` (cautious weight decay).

    Same arguments as :class:`adamw_lab.AdamW`.  The Adam step runs with
    ``weight_decay=0``; its displacement ``η_t u`` gives the sign of the update,
    then ``η_t λ w`` is subtracted where ``u ⊙ w > 0``.
    """

    @torch.no_grad()
    def step(self, closure=None):
        saved = [group["weight_decay"] for group in self.param_groups]
        before = [[p.detach().clone() for p in group["params"]] for group in self.param_groups]
        try:
            for group in self.param_groups:
                group["weight_decay"] = 0.0
            loss = super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, saved):
                group["weight_decay"] = wd
        for group, olds in zip(self.param_groups, before):
            for p, w in zip(group["params"], olds):
                if p.grad is None:
                    continue
                agree = ((w - p) * w > 0).to(p.dtype)        # (w - p) = η_t u
                p.sub_(_per_model(group["lr"], p) * _per_model(group["weight_decay"], p) * agree * w)
        return loss
