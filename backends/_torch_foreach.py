"""The multi-tensor path built from ``torch._foreach_*`` operations.

Used on devices without the fused CPU kernel (CUDA, and CPU when numba is not
installed) and for low-precision parameters with a wider state dtype.  Same math
as :mod:`._torch_single` with the step scalars folded into as few passes over
memory as the foreach operations allow:

    rectified:  θ ← θ − [α r_t sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)] · m / (sqrt(v + eps_root) + ε)
    otherwise:  θ ← θ − [α / (1 − β₁ᵗ)] · m                (SGD with momentum)

(eps after bias correction: denominator sqrt(v/(1 − β₂ᵗ) + eps_root) + ε and no
sqrt(1 − β₂ᵗ) in the bracket).  Folding the scalars changes the rounding, so this
path agrees with the single-tensor path to a few ulp, not bit for bit (tested).
All tensors of one call share device, dtype and step ``t``; the caller groups them.
"""

from __future__ import annotations

import torch

from radam_ref import RAdamConfig

from ._torch_scalars import HostScalars

__all__ = ["update_foreach"]


def _real_views(tensors):
    return [torch.view_as_real(x) if torch.is_complex(x) else x for x in tensors]


def update_foreach(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    s: HostScalars,
    config: RAdamConfig,
    *,
    lr: float,
    op_order: str,
) -> None:
    """One RAdam step at step ``s.t`` for same-device, same-dtype lists, in place."""
    if not params:
        return
    params, grads = _real_views(params), _real_views(grads)
    exp_avgs, exp_avg_sqs = _real_views(exp_avgs), _real_views(exp_avg_sqs)
    targets = params
    if params[0].dtype != exp_avgs[0].dtype:
        dtype = exp_avgs[0].dtype
        params = [p.to(dtype) for p in params]
        grads = [g.to(dtype) for g in grads]
    b1, b2 = config.betas
    wd = config.weight_decay
    if config.maximize:
        grads = torch._foreach_neg(grads)
    if config.weight_decay_mode == "l2" and wd != 0.0:
        grads = torch._foreach_add(grads, params, alpha=wd)
    if s.decays and config.decay_form == "subtract":
        # θ + (−αλ)θ with one rounding (torch's add with alpha is a fused multiply-add).
        torch._foreach_add_(params, params, alpha=-(lr * wd))
    elif s.decays:
        torch._foreach_mul_(params, 1.0 - lr * wd)

    if op_order == "torch":
        torch._foreach_lerp_(exp_avgs, grads, 1.0 - b1)
    else:
        torch._foreach_mul_(exp_avgs, b1)
        torch._foreach_add_(exp_avgs, grads, alpha=1.0 - b1)
    torch._foreach_mul_(exp_avg_sqs, b2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - b2)

    if config.nesterov:
        # m̂ = β₁ m/(1−β₁ᵗ⁺¹) + (1−β₁) g/(1−β₁ᵗ), materialised once.
        numerators = torch._foreach_mul(exp_avgs, b1 / s.bias_correction1_next)
        torch._foreach_add_(numerators, grads, alpha=(1.0 - b1) / s.bias_correction1)
        scale = 1.0
    else:
        numerators = exp_avgs
        scale = 1.0 / s.bias_correction1
    del grads

    if s.rectified:
        if config.eps_placement == "before_bias_correction":
            denom = (torch._foreach_add(exp_avg_sqs, config.eps_root) if config.eps_root
                     else exp_avg_sqs)
            denom = torch._foreach_sqrt(denom)
            step_size = lr * s.r_t * s.bias_correction2 ** 0.5 * scale
        else:
            denom = torch._foreach_div(exp_avg_sqs, s.bias_correction2)
            if config.eps_root:
                torch._foreach_add_(denom, config.eps_root)
            torch._foreach_sqrt_(denom)
            step_size = lr * s.r_t * scale
        torch._foreach_add_(denom, config.eps)
        torch._foreach_addcdiv_(params, numerators, denom, value=-step_size)
    elif s.moves:
        torch._foreach_add_(params, numerators, alpha=-lr * scale)

    if params is not targets:
        torch._foreach_copy_(targets, params)
