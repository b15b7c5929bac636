"""The single-tensor path: the readable ground truth of the torch backend.

One parameter at a time, plain torch operations, in place on ``p``, ``m`` and ``v``.
For step t (Liu et al. 2020, Algorithm 2; the options are those of
:class:`radam_ref.RAdamConfig`):

    g ← −g                                   if maximize
    g ← g + λθ                               if weight_decay_mode == "l2"
    m ← β₁m + (1 − β₁)g                      (line 6)
    v ← β₂v + (1 − β₂)g²                     (line 5)
    m̂ = m / (1 − β₁ᵗ)                        (line 7; nesterov: β₁m/(1−β₁ᵗ⁺¹) + (1−β₁)g/(1−β₁ᵗ))
    θ ← θ − (αλ)θ  or  θ(1 − αλ)             decoupled decay, by decay_form (§5)
    θ ← θ − (α r_t)(m̂ D_t)                   if rectified (lines 8–12)
    θ ← θ − α m̂                              else, with SGD momentum (line 14)

    D_t = sqrt(1 − β₂ᵗ) / (sqrt(v + eps_root) + ε)      eps before bias correction
    D_t = 1 / (sqrt(v / (1 − β₂ᵗ) + eps_root) + ε)      eps after bias correction

Operation order
---------------
``op_order="spec"`` evaluates every expression exactly as :func:`radam_ref.step`
does on torch tensors (same operations, same rounding), so this path reproduces
the spec bit for bit when the state dtype is the parameter dtype.

``op_order="torch"`` evaluates them as ``torch.optim.RAdam``'s single-tensor path
does: ``m.lerp_(g, 1 − β₁)`` (torch's lerp, fused multiply-add on vector CPUs),
``v.mul_(β₂).addcmul_(g, g, value=1 − β₂)``, L2 decay as ``g.add(θ, alpha=λ)``,
and the update ``θ.add_(m̂ · α · D_t · r_t, alpha=−1)`` in that association.  Only
the step scalars differ from torch's: ours are exact, torch's carry the rounding
of its float64 formula (see ``docs/torch-backend.md``).

Step scalars arrive either as :class:`HostScalars` (Python floats, branches taken
in Python) or as :class:`DeviceScalars` (0-d tensors: both branches are computed
and selected with ``torch.where``, so the code has no host synchronisation).
"""

from __future__ import annotations

import torch

from radam_ref import RAdamConfig

from ._torch_scalars import DeviceScalars, HostScalars

__all__ = ["update_single"]


def update_single(
    p: torch.Tensor,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    scalars: HostScalars | DeviceScalars,
    config: RAdamConfig,
    *,
    lr: float | torch.Tensor,
    op_order: str,
) -> None:
    """One RAdam step for one parameter, in place on ``p``, ``m``, ``v``.

    ``m`` and ``v`` may have a wider real dtype than ``p`` (e.g. float32 state
    for bfloat16 parameters): the arithmetic then runs in the state dtype and
    θ is rounded back to ``p``'s dtype once, at the end.  Complex tensors are
    updated as their real views (``torch.view_as_real``), as torch does.
    ``lr`` may be a tensor (e.g. requiring grad in differentiable mode).
    """
    if torch.is_complex(p):
        p, g = torch.view_as_real(p), torch.view_as_real(g)
        m, v = torch.view_as_real(m), torch.view_as_real(v)
    target = p
    if p.dtype != m.dtype:
        p, g = p.to(m.dtype), g.to(m.dtype)
    if isinstance(scalars, HostScalars):
        new_p = _host_step(p, g, m, v, scalars, config, lr, op_order)
    else:
        new_p = _device_step(p, g, m, v, scalars, config, lr, op_order)
    if new_p is not target:
        target.copy_(new_p)


def _moments(p, g, m, v, config: RAdamConfig, op_order: str):
    """Gradient transforms, then Alg. 2 lines 5–6 in place on m and v.  Returns g."""
    b1, b2 = config.betas
    if config.maximize:
        g = -g
    if config.weight_decay_mode == "l2" and config.weight_decay != 0.0:
        if op_order == "torch":
            g = g.add(p, alpha=config.weight_decay)
        else:
            g = g + config.weight_decay * p
    if op_order == "torch":
        m.lerp_(g, 1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
    else:
        m.mul_(b1).add_((1.0 - b1) * g)
        v.mul_(b2).add_((1.0 - b2) * (g * g))
    return g


def _bias_corrected(m, g, config: RAdamConfig, bc1, bc1_next):
    """m̂_t (Alg. 2 line 7), or optax's Nesterov variant."""
    if config.nesterov:
        b1 = config.beta1
        return b1 * (m / bc1_next) + (1.0 - b1) * (g / bc1)
    return m / bc1


def _adaptive(v, config: RAdamConfig, bc2, sqrt_bc2):
    """D_t of the module docstring; ``bc2`` is 1 − β₂ᵗ and ``sqrt_bc2`` its square
    root (floats, or 0-d tensors of the compute dtype).

    ``x / tensor`` with a Python float ``x`` is ``tensor.reciprocal() * x`` in torch;
    written out here so the same rounding holds when the scalars are tensors.
    """
    if config.eps_placement == "before_bias_correction":
        root = torch.sqrt(v + config.eps_root) if config.eps_root else torch.sqrt(v)
        return (root + config.eps).reciprocal() * sqrt_bc2
    v_hat = v / bc2
    root = torch.sqrt(v_hat + config.eps_root) if config.eps_root else torch.sqrt(v_hat)
    return (root + config.eps).reciprocal()


def _decayed(p, config: RAdamConfig, lr):
    """Decoupled weight decay (§5) as the spec writes it for ``config.decay_form``:
    θ − (αλ)θ ("subtract": only the small product αλ is rounded) or θ·(1 − αλ)."""
    c = lr * config.weight_decay
    if config.decay_form == "subtract":
        return p - c * p
    return p * (1.0 - c)


def _decay_(p, config: RAdamConfig, lr) -> None:
    """:func:`_decayed`, in place."""
    c = lr * config.weight_decay
    if config.decay_form == "subtract":
        p.sub_(c * p)
    else:
        p.mul_(1.0 - c)


def _host_step(p, g, m, v, s: HostScalars, config: RAdamConfig, lr, op_order: str):
    g = _moments(p, g, m, v, config, op_order)
    m_hat = _bias_corrected(m, g, config, s.bias_correction1, s.bias_correction1_next)
    if s.decays:
        _decay_(p, config, lr)
    if s.rectified:
        bc2 = s.bias_correction2
        adaptive = _adaptive(v, config, bc2, bc2 ** 0.5)
        if op_order == "torch":
            p.add_(m_hat * lr * adaptive * s.r_t, alpha=-1.0)
        else:
            p.sub_((lr * s.r_t) * (m_hat * adaptive))
    elif s.moves:
        if op_order == "torch":
            p.add_(m_hat * lr, alpha=-1.0)
        else:
            p.sub_(lr * m_hat)
    return p


def _device_step(p, g, m, v, s: DeviceScalars, config: RAdamConfig, lr, op_order: str):
    """As :func:`_host_step`, with 0-d tensor scalars and ``torch.where`` for branches.

    Scalar products (α r_t) are formed in float64 and then cast to the compute
    dtype, as a Python float is cast by torch in the host path.  The unselected
    branch stays finite: r_t is 0 there, never the square root of a negative
    number, so gradients through the step are finite too.
    """
    dtype = m.dtype
    bc1 = s.bias_correction1.to(dtype)
    bc1_next = s.bias_correction1_next.to(dtype)
    bc2 = s.bias_correction2.to(dtype)
    sqrt_bc2 = s.sqrt_bias_correction2.to(dtype)
    r_t = s.r_t.to(dtype)
    lr_r = (lr * s.r_t).to(dtype)
    g = _moments(p, g, m, v, config, op_order)
    m_hat = _bias_corrected(m, g, config, bc1, bc1_next)
    sgd = config.before_rectification == "sgd_momentum"
    mode, wd = config.weight_decay_mode, config.weight_decay
    if wd != 0.0 and (mode == "decoupled" or (mode == "decoupled_moving" and sgd)):
        p = _decayed(p, config, lr)
    elif wd != 0.0 and mode == "decoupled_moving":
        p = torch.where(s.rectified, _decayed(p, config, lr), p)
    adaptive = _adaptive(v, config, bc2, sqrt_bc2)
    if op_order == "torch":
        p_rectified = p - m_hat * lr * adaptive * r_t
        p_other = p - m_hat * lr if sgd else p
    else:
        p_rectified = p - lr_r * (m_hat * adaptive)
        p_other = p - lr * m_hat if sgd else p
    return torch.where(s.rectified, p_rectified, p_other)
