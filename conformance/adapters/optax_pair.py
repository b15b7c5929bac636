"""Adapter for an optax-style factory: ``factory(**hyperparameters) -> (init, update)``.

The factory's signature decides what it is told: ``learning_rate`` (or ``lr``),
``b1``/``b2`` (or ``beta1``/``beta2``, or ``betas``), ``eps``, and any of
``eps_root``, ``threshold``, ``nesterov``, ``maximize``, ``weight_decay`` it
accepts; a factory with a single ``config`` argument (like
:func:`radam_ref.optax_transform`) gets the whole :class:`~radam_ref.RAdamConfig`.

Weight decay, for a factory without it, is added the way optax users add it:
L2 as ``optax.chain(optax.add_decayed_weights(λ), tx)`` (λθ added to the gradient
before the moments), decoupled as ``optax.chain(tx, optax.add_decayed_weights(-αλ))``
(θ ← θ − αλθ + update, as ``optax.adamw`` does).  Several parameter groups use
``optax.multi_transform``.

x64: JAX computes in float32 unless 64-bit mode is on, and the result of a run
must not depend on whatever the caller's global setting is.  Every JAX call of
this adapter runs inside ``jax.enable_x64(x64)`` with the target's own ``x64``
flag (``False`` by default: optax's out-of-the-box behaviour).  Steps run
eagerly (``jit=False``, the default, avoids one compilation per drawn
hyperparameter set) or under ``jax.jit`` (``jit=True``); the long-horizon check
always scans the whole stream under one ``jax.jit``.
"""

from __future__ import annotations

import inspect
import pickle

import numpy as np

from radam_ref import RAdamConfig

from .base import NotSupported, Session, Target, TargetError

__all__ = ["OptaxTarget"]

_ALIASES = {
    "lr": ("learning_rate", "lr"),
    "beta1": ("b1", "beta1"),
    "beta2": ("b2", "beta2"),
    "betas": ("betas",),
    "eps": ("eps", "epsilon"),
    "eps_root": ("eps_root",),
    "threshold": ("threshold",),
    "nesterov": ("nesterov",),
    "maximize": ("maximize",),
    "weight_decay": ("weight_decay",),
}


class OptaxTarget(Target):
    """An optax-style ``(init, update)`` factory as a conformance target."""

    def __init__(self, factory, kwargs: dict | None = None, *, name: str | None = None,
                 profile: str | None = None, spec: tuple | None = None) -> None:
        kwargs = dict(kwargs or {})
        self.x64 = bool(kwargs.pop("x64", False))
        self.jit = bool(kwargs.pop("jit", False))
        self.factory = factory
        self.kwargs = kwargs
        base = name or f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', factory)}"
        self.name = base
        self.spec = spec
        try:
            params = set(inspect.signature(factory).parameters)
        except (TypeError, ValueError):  # pragma: no cover
            params = set()
        self.takes_config = params == {"config"}
        self.names = {}
        for field, aliases in _ALIASES.items():
            for alias in aliases:
                if alias in params:
                    self.names[field] = alias
                    break
        if self.takes_config:
            self.profile = profile or "paper"
            import dataclasses

            self.tunable = frozenset(f.name for f in dataclasses.fields(RAdamConfig))
            self.weight_decay_modes = frozenset({"none", "l2", "decoupled", "decoupled_moving"})
        else:
            self.profile = profile or "optax"
            self.tunable = frozenset(
                f for f in ("eps_root", "threshold", "nesterov", "maximize") if f in self.names
            )
            self.weight_decay_modes = frozenset({"none", "l2", "decoupled"})
        if self.x64:
            self.dtypes = ("float64", "float32", "float16", "bfloat16", "complex128", "complex64")
            self.default_dtype = "float64"
        else:
            self.dtypes = ("float32", "float16", "bfloat16", "complex64")
            self.default_dtype = "float32"
        self.features = frozenset({"param_groups", "state_dict", "complex", "autodiff", "side_effects"})

    def describe(self) -> str:
        return f"{self.name} (x64={'on' if self.x64 else 'off'})"

    # -------------------------------------------------------------- #

    def x64_context(self):
        import jax

        return jax.enable_x64(self.x64)

    def transform(self, config: RAdamConfig):
        """The GradientTransformation that expresses ``config``."""
        import optax

        if self.takes_config:
            return self.factory(config, **self.kwargs)
        kw = {}
        names = self.names
        if "lr" in names:
            kw[names["lr"]] = config.lr
        if "betas" in names:
            kw[names["betas"]] = tuple(config.betas)
        else:
            if "beta1" in names:
                kw[names["beta1"]] = config.beta1
            if "beta2" in names:
                kw[names["beta2"]] = config.beta2
        if "eps" in names:
            kw[names["eps"]] = config.eps
        for field in self.tunable:
            kw[names[field]] = getattr(config, field)
        wd = config.weight_decay if config.weight_decay_mode != "none" else 0.0
        if "weight_decay" in names:
            kw[names["weight_decay"]] = wd
            wd = 0.0
        try:
            tx = self.factory(**kw, **self.kwargs)
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.name}(**{kw!r}) raised {type(exc).__name__}: {exc}", exc) from exc
        if wd and config.weight_decay_mode == "l2":
            tx = optax.chain(optax.add_decayed_weights(wd), tx)
        elif wd and config.weight_decay_mode == "decoupled":
            tx = optax.chain(tx, optax.add_decayed_weights(-config.lr * wd))
        return tx

    def _arrays(self, values, dtype: str):
        import jax.numpy as jnp

        return [jnp.asarray(np.asarray(v), dtype=getattr(jnp, dtype)) for v in values]

    def open(self, groups, dtype: str) -> "OptaxSession":
        if dtype not in self.dtypes:
            raise NotSupported(f"dtype {dtype} (x64 {'on' if self.x64 else 'off'})")
        if len(groups) > 1 and "param_groups" not in self.features:
            raise NotSupported("several parameter groups")
        return OptaxSession(self, groups, dtype)

    def differentiate(self, params0, grads, config: RAdamConfig, dtype: str, cotangent):
        import jax
        import optax

        with self.x64_context():
            tx = self.transform(config)
            p0 = self._arrays(params0, dtype)
            gs = [self._arrays(step, dtype) for step in grads]
            cot = self._arrays(cotangent, dtype)

            def run(p0, gs):
                params, state = p0, tx.init(p0)
                for g in gs:
                    updates, state = tx.update(g, state, params)
                    params = optax.apply_updates(params, updates)
                return params

            try:
                _, vjp = jax.vjp(run, p0, gs)
                d_params, d_grads = vjp(cot)
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"jax.vjp through {self.name} raised {type(exc).__name__}: {exc}",
                                  exc) from exc
            to_np = lambda a: np.asarray(a).astype(np.complex128 if np.iscomplexobj(a) else np.float64)  # noqa: E731
            return [to_np(d) for d in d_params], [[to_np(d) for d in step] for step in d_grads]


class OptaxSession(Session):
    def __init__(self, target: OptaxTarget, groups, dtype: str) -> None:
        import optax

        self.target, self.dtype = target, dtype
        self.configs = [g.config for g in groups]
        with target.x64_context():
            self.params_tree = {f"g{i}": target._arrays(g.params, dtype) for i, g in enumerate(groups)}
            txs = {f"g{i}": target.transform(g.config) for i, g in enumerate(groups)}
            if len(groups) == 1:
                inner = txs["g0"]
                self.tx = optax.GradientTransformation(
                    lambda p: inner.init(p["g0"]),
                    lambda u, s, p=None: _wrap(inner.update(u["g0"], s, None if p is None else p["g0"])),
                )
            else:
                self.tx = optax.multi_transform(
                    txs, lambda params: {k: [k] * len(v) for k, v in params.items()}
                )
            try:
                self.state = self.tx.init(self.params_tree)
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"{target.name} init raised {type(exc).__name__}: {exc}", exc) from exc
            self._update = self._make_update()
        self._given = []

    def _make_update(self):
        import jax
        import optax

        tx = self.tx

        def update(grads, state, params):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return jax.jit(update) if self.target.jit else update

    def _grads_tree(self, grads):
        if any(g is None for group in grads for g in group):
            raise NotSupported("a None gradient (optax updates every leaf of the tree)")
        return {f"g{i}": self.target._arrays(group, self.dtype) for i, group in enumerate(grads)}

    def step(self, grads) -> None:
        with self.target.x64_context():
            tree = self._grads_tree(grads)
            self._given = [(np.array(g), a) for group, arrs in zip(grads, tree.values())
                           for g, a in zip(group, arrs)]
            try:
                self.params_tree, self.state = self._update(tree, self.state, self.params_tree)
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"{self.target.name} update raised {type(exc).__name__}: {exc}", exc) from exc

    def params(self) -> list:
        with self.target.x64_context():
            return [[_np(a) for a in self.params_tree[f"g{i}"]] for i in range(len(self.params_tree))]

    def param_dtypes(self) -> list:
        return [[str(a.dtype) for a in self.params_tree[f"g{i}"]] for i in range(len(self.params_tree))]

    def last_inputs(self) -> dict:
        with self.target.x64_context():
            return {"grads": [(before, _np(a)) for before, a in self._given]}

    def save(self) -> bytes:
        import jax

        with self.target.x64_context():
            return pickle.dumps(jax.device_get(self.state))

    def restore(self, blob: bytes) -> None:
        import jax
        import jax.numpy as jnp

        with self.target.x64_context():
            state = pickle.loads(blob)
            self.state = jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, np.ndarray) else x, state)

    def run_stream(self, grads_at, steps: int, record) -> list:
        """The whole stream under one ``jax.jit``-compiled ``lax.scan``."""
        import jax
        import jax.numpy as jnp
        import optax

        tx = self.tx
        with self.target.x64_context():
            rows = [grads_at(t) for t in range(1, steps + 1)]
            if any(g is None for row in rows for group in row for g in group):
                raise NotSupported("a None gradient (optax updates every leaf of the tree)")
            np_dtype = np.complex128 if self.dtype.startswith("complex") else np.float64
            stacked = {
                f"g{i}": [jnp.asarray(np.stack([np.asarray(row[i][j], dtype=np_dtype) for row in rows]),
                                      dtype=getattr(jnp, self.dtype))
                          for j in range(len(rows[0][i]))]
                for i in range(len(rows[0]))
            }

            def body(carry, g):
                params, state = carry
                updates, state = tx.update(g, state, params)
                params = optax.apply_updates(params, updates)
                return (params, state), params

            try:
                (params, state), history = jax.jit(
                    lambda c, s: jax.lax.scan(body, c, s))((self.params_tree, self.state), stacked)
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"{self.target.name} update raised {type(exc).__name__}: {exc}", exc) from exc
            self.params_tree, self.state = params, state
            out = []
            keys = [f"g{i}" for i in range(len(self.params_tree))]
            host = jax.device_get(history)
            for t in range(1, steps + 1):
                if record(t):
                    out.append([[_np(a[t - 1]) for a in host[k]] for k in keys])
            return out


def _wrap(result):
    updates, state = result
    return {"g0": updates}, state


def _np(a) -> np.ndarray:
    arr = np.asarray(a)
    if np.iscomplexobj(arr):
        return arr.astype(np.complex128)
    return arr.astype(np.float64)
