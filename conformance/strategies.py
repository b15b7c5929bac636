"""Hypothesis strategies for hyperparameters and gradient streams.

Each hyperparameter is drawn either from a short list of telling values (the
first is the default, so shrinking heads for it) or from a continuous range:

* lr ∈ {1e-3, 1e-2, 0.1, 0.5, 1} or log-uniform in [1e-4, 1];
* β₁ ∈ {0.9, 0, 0.5, 0.99} or uniform in [0, 0.999];
* β₂ ∈ {0.999, 0, 0.5, 0.6, 0.7, 0.9, 0.99, 0.9999, 0.99999} or 1 − 10^u,
  u ∈ [−5, 0]  (so β₂ ≤ 0.6, never rectified, and β₂ → 1, where the step scalars
  cancel, are both drawn often);
* ε ∈ {1e-8, 1e-6, 1e-3, 0.1};  weight decay ∈ {0, 1e-3, 0.1} or [0, 0.5].

Streams: 1–2 parameters of 1–4 elements, 6–14 steps (every case crosses the
first rectified step for thresholds 4 and 5 when β₂ ≥ 0.8), values ±{0.5, 1, …, 4} × 10^k with
one exponent k per stream (k ∈ [−6, 2] in float64, [−3, 2] in lower precision,
so nothing underflows), exact zeros included; all rounded to the run's dtype.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from radam_ref import RAdamConfig

from ._dtypes import round_to
from .scenario import Group, Scenario

__all__ = ["configs", "scenarios", "LR", "BETA1", "BETA2", "EPS", "WEIGHT_DECAY"]

LR = (1e-3, 1e-2, 0.1, 0.5, 1.0)
BETA1 = (0.9, 0.0, 0.5, 0.99)
BETA2 = (0.999, 0.0, 0.5, 0.6, 0.7, 0.9, 0.99, 0.9999, 0.99999)
EPS = (1e-8, 1e-6, 1e-3, 0.1)
WEIGHT_DECAY = (0.0, 1e-3, 0.1)


def _lr():
    return st.one_of(st.sampled_from(LR), st.floats(-4.0, 0.0).map(lambda e: float(10.0**e)))


def _beta1():
    return st.one_of(st.sampled_from(BETA1), st.floats(0.0, 0.999))


def beta2s(low: float = 0.0, high: float = 0.99999):
    """β₂ in [low, high]: telling values or 1 − 10^u."""
    listed = [b for b in BETA2 if low <= b <= high]
    import math

    u_low = math.log10(1.0 - high) if high < 1.0 else -5.0
    u_high = math.log10(1.0 - low) if low > 0.0 else 0.0
    drawn = st.floats(u_low, u_high).map(lambda u: min(max(1.0 - 10.0**u, low), high))
    return st.one_of(st.sampled_from(listed), drawn) if listed else drawn


def _weight_decay(nonzero: bool = False):
    if nonzero:
        return st.one_of(st.sampled_from((0.1, 1e-3, 0.5)), st.floats(1e-4, 0.5))
    return st.one_of(st.sampled_from(WEIGHT_DECAY), st.floats(0.0, 0.5))


@st.composite
def configs(draw, base: RAdamConfig, *, beta2=None, weight_decay=None, **fixed) -> RAdamConfig:
    """``base`` (a profile's config) with drawn hyperparameters and ``fixed`` options."""
    b2 = draw(beta2 if beta2 is not None else beta2s())
    wd = draw(weight_decay if weight_decay is not None else _weight_decay())
    return base.replace(lr=draw(_lr()), betas=(draw(_beta1()), b2), eps=draw(st.sampled_from(EPS)),
                        weight_decay=wd, **fixed)


def _values(draw, shape, scale: float, dtype: str, allow_zero: bool = True) -> np.ndarray:
    """An array of ±{0.5, 1, …, 4} × ``scale`` (one small integer drawn per element,
    so Hypothesis draws little and shrinks each element towards 0, or ±0.5)."""
    size = int(np.prod(shape))
    if allow_zero:
        elem = st.integers(-8, 8)
    else:
        elem = st.integers(-8, 7).map(lambda k: k + 1 if k >= 0 else k)
    raw = draw(st.lists(elem, min_size=size, max_size=size))
    return round_to(np.array(raw, dtype=np.float64).reshape(shape) * (0.5 * scale), dtype)


@st.composite
def scenarios(draw, base: RAdamConfig, dtype: str = "float64", *, config=None, steps=(6, 14),
              n_params=(1, 2), size=(1, 4), grad_exponents=None) -> Scenario:
    """A one-group scenario: drawn config (or ``config`` strategy), shapes and stream."""
    cfg = draw(config if config is not None else configs(base))
    n = draw(st.integers(*n_params))
    shapes = [(draw(st.integers(*size)),) for _ in range(n)]
    n_steps = draw(st.integers(*steps))
    if grad_exponents is None:
        grad_exponents = (-6, 2) if dtype in ("float64", "complex128") else (-3, 2)
    k = draw(st.one_of(st.just(0), st.integers(*grad_exponents)))
    kp = draw(st.sampled_from((0, -2, 2)))
    params = [_values(draw, s, 10.0**kp, dtype) for s in shapes]
    grads = [[[_values(draw, s, 10.0**k, dtype) for s in shapes]] for _ in range(n_steps)]
    return Scenario([Group(params, cfg)], grads, dtype=dtype)
