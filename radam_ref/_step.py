"""The functional RAdam step, written only against the Python array API standard.

For step t = count + 1 and every element (Liu et al. 2020, Algorithm 2):

    g_t ← −g_t                                  if maximize
    g_t ← g_t + λ θ_{t−1}                       if weight_decay_mode == "l2"
    m_t = β₁ m_{t−1} + (1 − β₁) g_t              (Alg. 2, line 6)
    v_t = β₂ v_{t−1} + (1 − β₂) g_t²             (Alg. 2, line 5)
    m̂_t = m_t / (1 − β₁ᵗ)                        (Alg. 2, line 7)
    θ ← θ − (αλ) θ   or  θ (1 − αλ)             if decoupled weight decay (§5; decay_form)
    if ρ_t > threshold:                          (Alg. 2, lines 8–9; ρ_t from §4.1)
        θ_t = θ − α r_t m̂_t · D_t                 (Alg. 2, lines 10–12; r_t from §4.2)
    else:
        θ_t = θ − α m̂_t                           (Alg. 2, line 14; or θ unchanged)

with the adaptive factor D_t, by ``eps_placement``,

    before_bias_correction:  D_t = sqrt(1 − β₂ᵗ) / (sqrt(v_t + eps_root) + ε)    (§3.1, ψ̂)
    after_bias_correction:   D_t = 1 / (sqrt(v_t/(1 − β₂ᵗ) + eps_root) + ε)

With ε = 0 both equal 1/v̂_t of Alg. 2 line 10.  The step scalars come from
:func:`radam_ref.schedule` (exact, float64) when the counter is a Python integer,
or from :func:`radam_ref.schedule_array` when it is an array (e.g. traced by
``jax.jit``); they are then used at each array's own dtype.

Non-finite values follow IEEE arithmetic (``nonfinite="propagate"``): in
particular with ε = 0, an element whose gradients have all been exactly 0 gets
0/0 = NaN on its first rectified step, as Algorithm 2 literally says.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

from ._config import RAdamConfig
from ._schedule import schedule_array
from ._tree import leaf_paths, unflatten
from ._validation import (
    NonFiniteGradientError,
    check_count,
    check_leaves,
    check_structures,
)

__all__ = ["RAdamState", "init", "step"]


class RAdamState(NamedTuple):
    """State of the functional step.

    Attributes:
        count: number of steps taken so far (Python int, or a 0-d integer array
            under jit); the next step is t = count + 1.
        m: first moment m_t, same structure, shapes and dtypes as params.
        v: second moment v_t, same structure, shapes and dtypes as params.
    """

    count: Any
    m: Any
    v: Any


def init(params: Any) -> RAdamState:
    """Initial state (Alg. 2, line 1: m₀ = v₀ = 0) for ``params``.

    ``params`` is one array or a (nested) list/tuple/dict of real floating arrays
    from one array-API namespace and device.  The moments are new zero arrays
    with each parameter's shape, dtype and device; ``count`` is 0.
    """
    treedef, (leaves,) = check_structures([("params", params)])
    xp = check_leaves(treedef, [("params", leaves)])
    zeros = [xp.zeros_like(p) for p in leaves]
    return RAdamState(
        count=0,
        m=unflatten(treedef, zeros),
        v=unflatten(treedef, [xp.zeros_like(p) for p in leaves]),
    )


def step(
    params: Any,
    grads: Any,
    state: RAdamState,
    config: RAdamConfig | None = None,
) -> tuple[Any, RAdamState]:
    """One RAdam step; returns ``(new_params, new_state)`` and writes nothing.

    Args:
        params: θ_{t−1}: one array or a (nested) list/tuple/dict of arrays.
        grads: g_t, with the same structure, shapes, dtypes, namespace and device.
        state: the :class:`RAdamState` from :func:`init` or a previous step.
        config: an :class:`RAdamConfig` (default: the ``paper`` profile).

    Returns:
        ``(params, state)`` of the same structure as the inputs, each array with
        the input's dtype, device and namespace.

    The equations, with their numbers in the paper, are in this module's
    docstring; the options are described on :class:`RAdamConfig`.

    Raises:
        TypeError / ValueError: for mismatched structures, shapes, dtypes,
            namespaces or devices, non-array or non-floating leaves, or a bad
            counter — before computing anything.
        NonFiniteGradientError: with ``config.nonfinite == "raise"``, when a
            gradient has a NaN or inf element (checked before anything else).
    """
    if config is None:
        config = RAdamConfig()
    if not isinstance(config, RAdamConfig):
        raise TypeError(f"config must be a RAdamConfig, got {config!r}")
    if not isinstance(state, RAdamState):
        raise TypeError(f"state must be a RAdamState (from radam_ref.init), got {type(state)!r}")
    treedef, (p_leaves, g_leaves, m_leaves, v_leaves) = check_structures(
        [("params", params), ("grads", grads), ("state.m", state.m), ("state.v", state.v)]
    )
    xp = check_leaves(
        treedef,
        [("params", p_leaves), ("grads", g_leaves), ("state.m", m_leaves), ("state.v", v_leaves)],
    )
    check_count(state.count)
    if config.nonfinite == "raise":
        for path, g in zip(leaf_paths(treedef, "grads"), g_leaves):
            if not bool(xp.all(xp.isfinite(g))):
                raise NonFiniteGradientError(
                    f"{path} has non-finite elements at step {state.count + 1}; "
                    "nothing was updated (config.nonfinite='raise')"
                )

    count = state.count
    t = count + 1
    # A Python or NumPy integer counter gets the exact host scalars; an array
    # counter (e.g. traced under jax.jit) gets the array form.
    exact = isinstance(count, numbers.Integral)
    if exact:
        sched = config.schedule(int(t))
        sched_next = config.schedule(int(t) + 1) if config.nesterov else None
        update = _update_exact
    else:
        kwargs = dict(beta1=config.beta1, beta2=config.beta2,
                      threshold=config.threshold, comparison=config.comparison)
        sched = schedule_array(t, **kwargs)
        sched_next = schedule_array(t + 1, **kwargs) if config.nesterov else None
        update = _update_traced

    new_p, new_m, new_v = [], [], []
    for p, g, m, v in zip(p_leaves, g_leaves, m_leaves, v_leaves):
        p2, m2, v2 = update(xp, config, sched, sched_next, p, g, m, v)
        # xp.asarray: NumPy arithmetic on 0-d arrays returns NumPy scalars; the
        # results must be arrays of the input's type (a no-op everywhere else).
        new_p.append(xp.asarray(p2))
        new_m.append(xp.asarray(m2))
        new_v.append(xp.asarray(v2))
    return unflatten(treedef, new_p), RAdamState(
        count=t, m=unflatten(treedef, new_m), v=unflatten(treedef, new_v)
    )


def _moments(config: RAdamConfig, p, g, m, v):
    """Gradient transforms and Alg. 2 lines 5–6.  Returns (g, m_t, v_t)."""
    b1, b2 = config.betas
    if config.maximize:
        g = -g
    if config.weight_decay_mode == "l2" and config.weight_decay != 0.0:
        g = g + config.weight_decay * p
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * (g * g)
    return g, m, v


def _update_exact(xp, config: RAdamConfig, sched, sched_next, p, g, m, v):
    """Algorithm 2 with Python-float step scalars (exact schedule)."""
    g, m, v = _moments(config, p, g, m, v)
    b1 = config.beta1
    if config.nesterov:
        m_hat = b1 * (m / sched_next.bias_correction1) + (1.0 - b1) * (g / sched.bias_correction1)
    else:
        m_hat = m / sched.bias_correction1
    moves = sched.rectified or config.before_rectification == "sgd_momentum"
    lr, wd = config.lr, config.weight_decay
    mode = config.weight_decay_mode
    if wd != 0.0 and (mode == "decoupled" or (mode == "decoupled_moving" and moves)):
        p = _decay(config, p)
    if sched.rectified:
        p = p - (lr * sched.r_t) * (m_hat * _adaptive(xp, config, v, sched.bias_correction2))
    elif moves:
        p = p - lr * m_hat
    return p, m, v


def _decay(config: RAdamConfig, p):
    """Decoupled weight decay (§5), in the config's ``decay_form``.

    ``"subtract"``: θ − (αλ)θ.  The only rounded scalar is the small product αλ
    (relative error 2⁻²⁴ in float32), so the decay is accurate in any dtype.
    ``"multiply"``: θ·(1 − αλ), as torch writes it; in float32 the factor 1 − αλ
    carries an absolute error up to 2⁻²⁵, i.e. up to 0.3% of the decay at αλ = 1e-5.
    """
    c = config.lr * config.weight_decay
    if config.decay_form == "subtract":
        return p - c * p
    return p * (1.0 - c)


def _adaptive(xp, config: RAdamConfig, v, bias_correction2):
    """D_t of the module docstring; ``bias_correction2`` is 1 − β₂ᵗ (float or 0-d array)."""
    if config.eps_placement == "before_bias_correction":
        root = xp.sqrt(v + config.eps_root) if config.eps_root else xp.sqrt(v)
        return bias_correction2 ** 0.5 / (root + config.eps)
    v_hat = v / bias_correction2
    root = xp.sqrt(v_hat + config.eps_root) if config.eps_root else xp.sqrt(v_hat)
    return 1.0 / (root + config.eps)


def _update_traced(xp, config: RAdamConfig, sched, sched_next, p, g, m, v):
    """Algorithm 2 with 0-d array step scalars: branches become ``where``."""
    dtype = p.dtype

    def cast(x):
        return xp.astype(x, dtype)

    g, m, v = _moments(config, p, g, m, v)
    b1 = config.beta1
    bc1 = cast(sched.bias_correction1)
    if config.nesterov:
        m_hat = b1 * (m / cast(sched_next.bias_correction1)) + (1.0 - b1) * (g / bc1)
    else:
        m_hat = m / bc1
    rectified = sched.rectified
    lr, wd = config.lr, config.weight_decay
    sgd = config.before_rectification == "sgd_momentum"
    mode = config.weight_decay_mode
    if wd != 0.0 and mode == "decoupled":
        p = _decay(config, p)
    elif wd != 0.0 and mode == "decoupled_moving":
        p = _decay(config, p) if sgd else xp.where(rectified, _decay(config, p), p)
    step_size = cast(lr * sched.r_t)
    p_rect = p - step_size * (m_hat * _adaptive(xp, config, v, cast(sched.bias_correction2)))
    p_other = p - lr * m_hat if sgd else p
    return xp.where(rectified, p_rect, p_other), m, v
