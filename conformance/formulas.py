"""One-term changes to the RAdam update: the search space for deviations no axis explains.

Each entry is a cause id of :mod:`.causes` (``formula/...``) and a way to build an
oracle with that single change: a replacement for the step scalars
(``schedule_fn(config, t)``) or for the per-element update
(``update_fn(xp, config, sched, sched_next, p, g, m, v)``).  :mod:`.diagnose` runs
every one over a failing scenario and names the one that reproduces the target
within tolerance, if any.

The update written here is Algorithm 2 of the paper (float64, element-wise):

    m_t = β₁ m + (1 − β₁) g,   v_t = β₂ v + (1 − β₂) g²,   m̂_t = m_t / (1 − β₁ᵗ)
    rectified (ρ_t > threshold):  θ −= α r_t m̂_t D_t,   D_t = sqrt(1 − β₂ᵗ)/(sqrt(v_t) + ε)
                                  (or 1/(sqrt(v_t/(1 − β₂ᵗ)) + ε) with ε after the bias correction)
    otherwise:                    θ −= α m̂_t  (or nothing, before_rectification = "none")

with decoupled or L2 weight decay as the config says (Nesterov momentum and
eps_root are not modelled here).  Each variant changes one term of it; nothing
here is used for a verdict.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from radam_ref import RAdamConfig, StepSchedule

from .oracle import exact_schedule

__all__ = ["FORMULA_VARIANTS", "Variant", "variant_update"]


@dataclasses.dataclass(frozen=True)
class Variant:
    cause: str
    schedule_fn: object = None
    update_fn: object = None


def _shift(k: int):
    def fn(config: RAdamConfig, t: int) -> StepSchedule:
        return dataclasses.replace(exact_schedule(config, max(1, t + k)), t=t)

    return fn


def _no_bc1(config: RAdamConfig, t: int) -> StepSchedule:
    return dataclasses.replace(exact_schedule(config, t), bias_correction1=1.0)


def _no_bc2(config: RAdamConfig, t: int) -> StepSchedule:
    return dataclasses.replace(exact_schedule(config, t), bias_correction2=1.0)


def _r_squared(config: RAdamConfig, t: int) -> StepSchedule:
    s = exact_schedule(config, t)
    return dataclasses.replace(s, r_t=s.r_t * s.r_t) if s.rectified else s


def _r_one(config: RAdamConfig, t: int) -> StepSchedule:
    s = exact_schedule(config, t)
    return dataclasses.replace(s, r_t=1.0) if s.rectified else s


def _rho(config: RAdamConfig, t: int, rho_inf: float, factor: float) -> StepSchedule:
    """The schedule with ρ∞ and the factor of 2tβ₂ᵗ/(1 − β₂ᵗ) changed (threshold and
    r_t recomputed from the changed ρ_t, ρ∞)."""
    s = exact_schedule(config, t)
    b2t = 1.0 - s.bias_correction2
    rho = rho_inf - factor * t * b2t / s.bias_correction2 if s.bias_correction2 > 0 else rho_inf
    thr = config.threshold
    rect = rho > thr if config.comparison == ">" else rho >= thr
    r = None
    if rect and rho > 4.0 and rho_inf > 4.0:
        r = math.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
    return dataclasses.replace(s, rho_inf=rho_inf, rho_t=rho, rectified=bool(r is not None), r_t=r)


def _rho_inf_plus_one(config: RAdamConfig, t: int) -> StepSchedule:
    return _rho(config, t, 2.0 / (1.0 - config.beta2), 2.0)


def _rho_factor_one(config: RAdamConfig, t: int) -> StepSchedule:
    return _rho(config, t, 2.0 / (1.0 - config.beta2) - 1.0, 1.0)


def variant_update(change: str):
    """The spec's update (module docstring) with the one-term ``change``
    (``"complex_abs_square"``: the complex |g|² convention, on real pairs)."""

    def update(xp, config: RAdamConfig, sched, sched_next, p, g, m, v):
        b1, b2 = config.betas
        lr, wd, eps = config.lr, config.weight_decay, config.eps
        if change == "lr_squared":
            lr = lr * lr
        if config.maximize:
            g = -g
        mode = config.weight_decay_mode
        if mode == "l2" and wd:
            g = g + wd * p
        m = b1 * m + (1.0 if change == "momentum_no_one_minus_beta" else 1.0 - b1) * g
        g2 = g * g
        if change == "complex_abs_square":  # real pairs on the last axis; v sees |g|² for both
            g2 = np.broadcast_to(np.sum(g2, axis=-1, keepdims=True), np.shape(g2))
        v = b2 * v + (1.0 if change == "v_no_one_minus_beta" else 1.0 - b2) * g2
        m_hat = m / sched.bias_correction1
        moves = sched.rectified or config.before_rectification == "sgd_momentum"
        if wd and (mode == "decoupled" or (mode == "decoupled_moving" and moves)):
            p = p - (wd if change == "decay_lr_missing" else lr * wd) * p
        if sched.rectified:
            bc2 = sched.bias_correction2
            root = v if change == "sqrt_v_missing" else np.sqrt(v)
            if config.eps_placement == "before_bias_correction":
                d = math.sqrt(bc2) / (root + eps)
            else:
                d = 1.0 / ((v / bc2 if change == "sqrt_v_missing" else np.sqrt(v / bc2)) + eps)
            p = p - (lr * sched.r_t) * (m_hat * d)
        elif moves:
            p = p - lr * (m if change == "sgd_uncorrected" else m_hat)
            if change == "eps_zero_masked_nan" and eps == 0.0:
                # the adaptive term computed for every element and masked by a product:
                # (sqrt(v) + ε)/(αr_t·…) with r_t = 0 is 0/0 where v = 0, and m·NaN = NaN
                p = np.where(np.asarray(v) == 0, np.nan, p)
        return p, m, v

    return update


#: Every one-term change, in the order tried.
FORMULA_VARIANTS = (
    Variant("formula/sgd_uncorrected", update_fn=variant_update("sgd_uncorrected")),
    Variant("formula/no_bias_correction_m", schedule_fn=_no_bc1),
    Variant("formula/no_bias_correction_v", schedule_fn=_no_bc2),
    Variant("formula/step_ahead", schedule_fn=_shift(1)),
    Variant("formula/step_behind", schedule_fn=_shift(-1)),
    Variant("formula/r_not_sqrt", schedule_fn=_r_squared),
    Variant("formula/r_missing", schedule_fn=_r_one),
    Variant("formula/rho_inf_off_by_one", schedule_fn=_rho_inf_plus_one),
    Variant("formula/rho_factor", schedule_fn=_rho_factor_one),
    Variant("formula/sqrt_v_missing", update_fn=variant_update("sqrt_v_missing")),
    Variant("formula/lr_squared", update_fn=variant_update("lr_squared")),
    Variant("formula/momentum_no_one_minus_beta", update_fn=variant_update("momentum_no_one_minus_beta")),
    Variant("formula/v_no_one_minus_beta", update_fn=variant_update("v_no_one_minus_beta")),
    Variant("formula/decay_lr_missing", update_fn=variant_update("decay_lr_missing")),
    Variant("formula/eps_zero_masked_nan", update_fn=variant_update("eps_zero_masked_nan")),
)
