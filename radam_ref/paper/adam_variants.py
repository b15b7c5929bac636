"""The Adam baselines of the paper's experiments, as one small torch optimizer.

``PaperAdam`` is Adam written as the paper's eq. 1 with the numerically stable
adaptive rate ψ̂ of §2 (ε added to sqrt(v_t) *before* bias correction, as in the
authors' fairseq runs and in this project's ``paper`` profile of RAdam):

    v_t = β₂ v_{t−1} + (1 − β₂) g_t²
    m_t = β₁ m_{t−1} + (1 − β₁) g_t
    θ_t = θ_{t−1} − α_t · m_t/(1 − β₁ᵗ) · sqrt(1 − β₂ᵗ) / (sqrt(v_t) + ε)

It also provides the two controls of §3.1:

* **Adam-k** (the paper's Adam-2k has k = 2000): for the first k calls of
  ``step`` only v is updated — "only the adaptive learning rate (ψ) is updated,
  while the momentum (φ) and parameters (θ) are fixed; other than this, it follows
  the original Adam algorithm".  Afterwards each bias correction counts its own
  samples: 1 − β₂ to the number of v updates (k + t), 1 − β₁ to the number of m
  updates (t).
* **Adam-eps**: ε = 1e-4 instead of 1e-8.

Linear warmup (§2, §4.3: α_t = α · min(t, T_w)/T_w) is applied by the training loop
through ``radam_ref.theory.warmup_factor``.  The bias corrections come from
:func:`radam_ref.schedule`.
"""

from __future__ import annotations

import math
import numbers

import torch

import radam_ref

__all__ = ["PaperAdam"]


class PaperAdam(torch.optim.Optimizer):
    """Adam per eq. 1 / §2's ψ̂, with Adam-k's second-moment-only first steps (§3.1).

    Args:
        params: iterable of tensors or parameter groups.
        lr: α > 0.
        betas: (β₁, β₂), each in [0, 1).
        eps: ε ≥ 0, added to sqrt(v_t) before bias correction.
        v_only_steps: k ≥ 0; the first k steps update only v (Adam-2k: 2000).

    Raises:
        TypeError, ValueError: naming the bad argument and its value.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 v_only_steps: int = 0):
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a finite positive number, got {lr!r}")
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not (0.0 <= beta < 1.0):
                raise ValueError(f"betas[{index}] must be in [0, 1), got {beta!r}")
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (eps >= 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        if isinstance(v_only_steps, bool) or not isinstance(v_only_steps, numbers.Integral) or v_only_steps < 0:
            raise ValueError(f"v_only_steps must be an integer >= 0, got {v_only_steps!r}")
        defaults = dict(lr=float(lr), betas=(float(betas[0]), float(betas[1])), eps=float(eps),
                        v_only_steps=int(v_only_steps))
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    state = self.state[p]
                    if not state:
                        state["v_count"] = 0
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["v_count"] += 1
                    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    if state["v_count"] <= group["v_only_steps"]:
                        continue  # Adam-k: θ and m frozen, only ψ's estimate moves
                    state["step"] += 1
                    state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                    bc1 = radam_ref.schedule(state["step"], beta1=beta1, beta2=beta2).bias_correction1
                    bc2 = radam_ref.schedule(state["v_count"], beta1=beta1, beta2=beta2).bias_correction2
                    denom = state["exp_avg_sq"].sqrt().add_(group["eps"])
                    p.addcdiv_(state["exp_avg"], denom, value=-group["lr"] * math.sqrt(bc2) / bc1)
        return loss
