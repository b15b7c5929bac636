"""How far a conforming target may be from the oracle, and why.

The oracle
----------
The oracle is the spec (:mod:`radam_ref`) run in float64 on the *same* inputs the
target received: every initial parameter and gradient is first rounded to the
target's dtype, so both start from bit-identical values.  The spec's step scalars
(ρ_t, r_t, 1 − β₁ᵗ, 1 − β₂ᵗ) are exact to float64 (60-digit evaluation).

The error bound
---------------
A target whose parameters have a dtype with machine epsilon ε (2⁻⁵² for float64,
2⁻²³ for float32, 2⁻¹⁰ for float16, 2⁻⁷ for bfloat16; ε₆₄ = 2⁻⁵²) may differ from
the oracle, element by element after step t, by at most

    tol_t = K · (ε · S_t + ε₆₄ · S⁶⁴_t)  +  τ,     K = 8,  τ = smallest normal of the dtype,

where S_t and S⁶⁴_t are running *error scales* accumulated beside the oracle:

    S_t   = S_{t−1}   + |θ_t| + W_t + (a_t + σ_t) · U_t
    S⁶⁴_t = S⁶⁴_{t−1} + σ⁶⁴_t · U_t

* |θ_t|: the final rounding of θ_t (and of the multiplication by 1 − αλ).
* W_t = α λ |θ_{t−1}|: the decoupled weight-decay term, when it applies.
* U_t: the size of the step's moment update computed on *absolute values*: with
  m̂ᵃᵇˢ the bias-corrected EMA of |g| (|g| + λ|θ| under L2 decay),
  U_t = α r_t m̂ᵃᵇˢ D_t on rectified steps (D_t the adaptive factor),
  α m̂ᵃᵇˢ on SGD-momentum steps, 0 when θ does not move.  Using |g| rather than g
  keeps the bound honest when m_t is a cancelling sum: its rounding error is
  relative to Σ|terms|, not to m_t.
* a_t = 1 + min(t, 1/(1−β₁) + 1/(1−β₂)): the moments are EMAs, so their relative
  rounding error grows by O(ε) per step until old errors decay away.
* σ_t, σ⁶⁴_t: the step scalars.  Two ways of computing them conform:
  (i) in float64 by any formula — including the obvious
  ρ_t = ρ∞ − 2tβ₂ᵗ/(1 − β₂ᵗ), which cancels: with β₂ᵗ off by ε₆₄ relative, ρ_t is
  off by ε₆₄(ρ∞ + 2tβ₂ᵗ/(1 − β₂ᵗ)²), r_t by that over ρ_t − 4 (relative), and
  1 − βᵗ by ε₆₄βᵗ/(1 − βᵗ) (relative); so on a rectified step
  σ⁶⁴_t = (ρ∞ + 2tβ₂ᵗ/(1−β₂ᵗ)²)(1 + 1/(ρ_t − 4)) + β₂ᵗ/(1−β₂ᵗ) + β₁ᵗ/(1−β₁ᵗ),
  and β₁ᵗ/(1−β₁ᵗ) on an SGD-momentum step;
  (ii) in the target's own precision by a cancellation-free formula (as
  :func:`radam_ref.schedule_array` does): a few ε, and ε·ρ_t/(ρ_t − 4) for r_t;
  so σ_t = 2 + ρ_t/(ρ_t − 4) on a rectified step and 1 otherwise.

The bound is linear in t — the worst case for accumulated rounding (a target
whose rounding is biased really does drift linearly) — so it grows with the
number of steps.  K = 8 covers the few roundings per operation counted above
with a margin; nothing in it is fitted to a particular implementation.

Once a target has been *reported* as computing its step scalars in float32 (the
``arithmetic`` check), the other checks look past that finding: their oracle
evaluates the step scalars the same way, and ε₃₂ replaces ε₆₄ in front of S⁶⁴_t
and in the branch window (``scalar_eps``), since the target's own cancelling
formula differs from the oracle's by that much.

What the bound deliberately does *not* allow: step scalars evaluated by the
cancelling formula in float32 (ε₃₂ in place of ε₆₄ above: errors from 1 % to 50 %
in r_t around the first rectified step for β₂ ≥ 0.999), or computed from β₂
rounded to float32 while ρ∞ keeps the exact β₂ (what optax does without x64:
ρ_t moves by ρ∞·δ(1 − β₂)/(1 − β₂), i.e. 0.03 at β₂ = 0.999 and 3 at 0.9999).
SPEC-NOTES calls exactly these wrong.

The "acceptable" verdict
------------------------
The threshold decision ρ_t > threshold is discontinuous.  Where the exact ρ_t is
within the error that the two conforming evaluations above may make,

    |ρ_t − threshold| ≤ K · (ε₆₄ (ρ∞ + 2tβ₂ᵗ/(1 − β₂ᵗ)²) + ε ρ_t)   (the branch window),

a conforming target may take either branch.  The suite then also accepts the
trajectory of the spec with that step's branch flipped and reports the verdict
*acceptable* (never *pass*).  Near the threshold, in float64 the window is below
1e-8 for β₂ ≤ 0.999 and below 1e-5 up to β₂ = 0.99999 (where the cancelling
formula itself is only good to ~4e-7); float32 adds about 5e-6.

Non-finite values
-----------------
NaN is expected exactly where the oracle (IEEE arithmetic) has NaN, ±inf where it
has ±inf; the ε = 0 check relaxes this as documented in its own docstring.
"""

from __future__ import annotations

import math

import numpy as np

from radam_ref import RAdamConfig

from ._dtypes import machine_epsilon, smallest_normal

__all__ = [
    "K",
    "ErrorScale",
    "tolerance",
    "branch_window",
    "ambiguous_steps",
    "scalar_conditioning",
    "EPS64",
]

#: The safety factor on the rounding-error count (see the module docstring).
K = 8.0


EPS64 = 2.0**-52


def _naive_rho_error(config: RAdamConfig, t: int) -> float:
    """ρ∞ + 2tβ₂ᵗ/(1 − β₂ᵗ)²: the error of the cancelling ρ_t formula, in units of ε₆₄."""
    sched = config.schedule(t)
    b2t = 1.0 - sched.bias_correction2
    bc2 = sched.bias_correction2
    return sched.rho_inf + (2.0 * t * b2t / (bc2 * bc2) if bc2 > 0.0 else 0.0)


def scalar_conditioning(config: RAdamConfig, sched) -> tuple[float, float]:
    """(σ_t, σ⁶⁴_t) of the module docstring for one step (``sched`` a StepSchedule)."""
    bc1 = sched.bias_correction1
    h1 = (1.0 - bc1) / bc1 if bc1 > 0.0 else math.inf
    if not sched.rectified:
        return 1.0, h1
    gap = sched.rho_t - 4.0
    if gap <= 0.0:
        return math.inf, math.inf
    bc2 = sched.bias_correction2
    b2t = 1.0 - bc2
    naive_rho = sched.rho_inf + 2.0 * sched.t * b2t / (bc2 * bc2)
    sigma = 2.0 + sched.rho_t / gap
    sigma64 = naive_rho * (1.0 + 1.0 / gap) + b2t / bc2 + h1
    return sigma, sigma64


def branch_window(config: RAdamConfig, dtype: str, t: int, scalar_eps: float = EPS64) -> float:
    """Half-width of the band around the threshold, at step t, where either branch
    is acceptable.  ``scalar_eps``: the precision of the cancelling step-scalar
    formula (ε₆₄; ε₃₂ for a target already reported as computing them in float32)."""
    rho = config.schedule(t).rho_t
    return K * (scalar_eps * _naive_rho_error(config, t) + machine_epsilon(dtype) * abs(rho))


def ambiguous_steps(config: RAdamConfig, dtype: str, steps: int, scalar_eps: float = EPS64) -> list[int]:
    """Steps t ≤ ``steps`` whose ρ_t is inside the branch window of the threshold."""
    out = []
    for t in range(1, steps + 1):
        rho = config.schedule(t).rho_t
        window = branch_window(config, dtype, t, scalar_eps)
        if abs(rho - config.threshold) <= window:
            out.append(t)
        if rho > config.threshold + window:
            break  # ρ_t increases with t
    return out


def tolerance(scale: np.ndarray, dtype: str, scalar_eps: float = EPS64) -> np.ndarray:
    """Allowed |target − oracle| per element given the error scales (S_t, S⁶⁴_t)
    stacked on the first axis."""
    with np.errstate(invalid="ignore", over="ignore"):
        tol = K * (machine_epsilon(dtype) * scale[0] + scalar_eps * scale[1]) + smallest_normal(dtype)
    return np.where(np.isnan(tol), np.inf, tol)


class ErrorScale:
    """Accumulates (S_t, S⁶⁴_t) of the module docstring for one parameter array."""

    def __init__(self, shape) -> None:
        self.m_abs = np.zeros(shape)
        self.scale = np.zeros((2,) + tuple(shape))

    def update(self, config: RAdamConfig, sched, sched_next, t: int, p_prev, g, v_new, p_new) -> None:
        b1, b2 = config.betas
        lr, wd = config.lr, config.weight_decay
        mode = config.weight_decay_mode
        with np.errstate(all="ignore"):
            g_abs = np.abs(g)
            if mode == "l2" and wd:
                g_abs = g_abs + wd * np.abs(p_prev)
            self.m_abs = b1 * self.m_abs + (1.0 - b1) * g_abs
            if config.nesterov:
                m_hat = b1 * self.m_abs / sched_next.bias_correction1 + (1.0 - b1) * g_abs / sched.bias_correction1
            else:
                m_hat = self.m_abs / sched.bias_correction1
            moves = sched.rectified or config.before_rectification == "sgd_momentum"
            if sched.rectified:
                bc2 = sched.bias_correction2
                if config.eps_placement == "before_bias_correction":
                    d = math.sqrt(bc2) / (np.sqrt(v_new + config.eps_root) + config.eps)
                else:
                    d = 1.0 / (np.sqrt(v_new / bc2 + config.eps_root) + config.eps)
                u = lr * sched.r_t * m_hat * d
            elif moves:
                u = lr * m_hat
            else:
                u = np.zeros_like(m_hat)
            w = 0.0
            if wd and (mode == "decoupled" or (mode == "decoupled_moving" and moves)):
                w = lr * wd * np.abs(p_prev)
            a = 1.0 + min(t, 1.0 / (1.0 - b1) + 1.0 / (1.0 - b2))
            sigma, sigma64 = scalar_conditioning(config, sched) if moves else (0.0, 0.0)
            self.scale[0] = self.scale[0] + np.abs(p_new) + w + (a + sigma) * u
            self.scale[1] = self.scale[1] + sigma64 * u
