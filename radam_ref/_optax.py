"""The spec as an optax-style gradient transformation.

``optax_transform(config)`` returns an ``(init, update)`` pair
(``optax.GradientTransformation`` when optax is installed, else a plain
NamedTuple with the same fields).  ``update(grads, state, params)`` returns the
*updates* θ_t − θ_{t−1}, so ``optax.apply_updates(params, updates)`` gives the
spec's θ_t, and the pair composes inside ``optax.chain``.  The step counter is a
0-d int32 array, so ``update`` runs under ``jax.jit`` with the array form of the
step scalars (see :func:`radam_ref.schedule_array` for its precision: float64
with ``jax_enable_x64``, float32 otherwise).  ``params`` is required, since
weight decay reads it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ._config import RAdamConfig
from ._step import RAdamState, init as _init, step as _step

__all__ = ["optax_transform"]


class _Transformation(NamedTuple):
    init: Callable
    update: Callable


def optax_transform(config: RAdamConfig | None = None):
    """Return ``(init_fn, update_fn)`` applying :func:`radam_ref.step` with ``config``."""
    if config is None:
        config = RAdamConfig()
    if not isinstance(config, RAdamConfig):
        raise TypeError(f"config must be a RAdamConfig, got {config!r}")

    def init_fn(params: Any) -> RAdamState:
        import array_api_compat

        state = _init(params)
        first = _first_leaf(params)
        xp = array_api_compat.array_namespace(first)
        return state._replace(count=xp.zeros((), dtype=xp.int32))

    def update_fn(updates: Any, state: RAdamState, params: Any = None):
        if params is None:
            raise ValueError("radam_ref.optax_transform's update needs params (got params=None)")
        new_params, new_state = _step(params, updates, state, config)
        from ._tree import flatten, unflatten

        p_leaves, treedef = flatten(params)
        n_leaves, _ = flatten(new_params)
        deltas = unflatten(treedef, [n - p for n, p in zip(n_leaves, p_leaves)])
        return deltas, new_state

    try:
        import optax

        return optax.GradientTransformation(init_fn, update_fn)
    except ImportError:
        return _Transformation(init_fn, update_fn)


def _first_leaf(tree):
    from ._tree import flatten

    leaves, _ = flatten(tree)
    return leaves[0]
