"""Adapter for a Keras 3 optimizer class (``keras.optimizers.Optimizer`` subclass).

The class is built as ``cls(**options)`` with what its constructor accepts by
name: Keras' ``learning_rate``, ``beta_1``, ``beta_2``, ``epsilon`` and
``weight_decay`` (0 for weight-decay mode ``"none"``), and every other
:class:`~radam_ref.RAdamConfig` field (``threshold``, ``eps_placement``,
``weight_decay_mode``, ...).  A class without ``weight_decay_mode`` gets Keras'
built-in weight decay, which is decoupled (θ ← θ − θλα before each step).

Mapping onto Keras:

* **Backend.**  Keras picks its backend once per process, when it is first
  imported.  The target takes ``backend`` (``"jax"``, ``"torch"`` or
  ``"tensorflow"``); without it, the ``KERAS_BACKEND`` environment variable, the
  backend of an already imported Keras, or else JAX (then torch, then
  TensorFlow), whichever is installed.  Asking for a backend other than the one
  an imported Keras already uses is a usage error: run each backend in its own
  process (``KERAS_BACKEND=torch radam-ref conformance radam_ref.backends.keras``).
* **float64.**  On JAX the adapter turns 64-bit mode on before importing Keras
  (``x64=True``, the default), so float64 runs.  ``keras.config.floatx()`` is
  set while each optimizer is built — float64 for float64 runs, float32
  otherwise — because Keras keeps the learning rate in a floatx variable.
* **Parameter groups.**  Keras has none: each group gets its own optimizer
  instance (with its own step counter, so a group added after some steps
  starts at t = 1, as in torch).
* **None gradients** are not supported: Keras skips the variable but advances
  the optimizer's single step counter, so later steps of that variable use a
  different t than the spec's per-parameter counters.
* **State** is saved with the optimizer's own ``save_own_variables`` (step
  counter, learning rate, m and v of every variable, by position) and pickled;
  restore is ``load_own_variables`` into a freshly built optimizer.  Keras only
  warns when the number of variables differs; the adapter reports that as a
  failure.
* **Long streams** run under one ``jax.jit``-compiled ``lax.scan`` of
  ``stateless_apply`` on JAX (the way Keras trains on JAX) and under one
  ``tf.function`` per optimizer on TensorFlow; other steps run eagerly.

Dtypes: float32, float16, bfloat16, and float64 (on JAX only with x64).
Complex parameters, autodiff through the step and ``None`` gradients are
reported "not supported".
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import inspect
import os
import pickle
import sys

import numpy as np

from radam_ref import RAdamConfig

from .base import NotSupported, Session, Target, TargetError
from .registry import TargetUnavailable

__all__ = ["KerasOptimizerTarget", "select_backend", "BACKENDS"]

#: The Keras 3 backends this adapter drives.
BACKENDS = ("jax", "torch", "tensorflow")

_AXES = tuple(
    f.name for f in dataclasses.fields(RAdamConfig)
    if f.name not in ("lr", "betas", "eps", "weight_decay", "profile", "nonfinite", "weight_decay_mode")
)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def select_backend(backend: str | None = None, *, x64: bool = True) -> str:
    """Choose the Keras backend (before Keras is imported) and import Keras.

    Returns the backend in use.  Raises :class:`TargetUnavailable` when Keras is
    already imported with another backend, and ``ImportError`` when Keras or the
    backend is missing.
    """
    if backend is not None and backend not in BACKENDS:
        raise TargetUnavailable(f"unknown Keras backend {backend!r} (choose one of {BACKENDS})")
    if "keras" in sys.modules and hasattr(sys.modules["keras"], "backend"):
        current = sys.modules["keras"].backend.backend()
        if backend is not None and backend != current:
            raise TargetUnavailable(
                f"Keras is already imported with the {current!r} backend in this process, and a "
                f"process has one Keras backend: run the {backend!r} check in its own process "
                f"(KERAS_BACKEND={backend} radam-ref conformance ...)"
            )
        backend = current
    else:
        backend = backend or os.environ.get("KERAS_BACKEND") or next(
            (b for b in BACKENDS if _installed(b)), "jax")
        if backend not in BACKENDS:
            raise TargetUnavailable(f"unknown Keras backend {backend!r} (choose one of {BACKENDS})")
        os.environ["KERAS_BACKEND"] = backend
    if backend == "jax" and x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    import keras

    if not hasattr(keras, "ops"):
        raise ImportError(f"Keras 3 is needed, found Keras {keras.__version__}")
    return keras.backend.backend()


def _import_class(cls):
    if not isinstance(cls, str):
        return cls
    module_name, _, attr = cls.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class KerasOptimizerTarget(Target):
    """A Keras 3 optimizer class as a conformance target (see the module docstring).

    Args:
        cls: the optimizer class, or ``"module:attr"`` naming it (imported after
            the backend is chosen).  Default: :class:`radam_ref.backends.keras.RAdam`.
        backend: ``"jax"``, ``"torch"`` or ``"tensorflow"`` (default: see above).
        x64: on JAX, turn 64-bit mode on (default True; False: float32 only).
        options: further keyword arguments for every ``cls(...)`` call.
    """

    features = frozenset({"param_groups", "add_param_group", "state_dict", "side_effects"})

    def __init__(self, cls="radam_ref.backends.keras:RAdam", *, backend: str | None = None,
                 x64: bool = True, name: str | None = None, profile: str | None = None,
                 spec: tuple | None = None, **options) -> None:
        self.backend = select_backend(backend, x64=bool(x64))
        import keras

        self.keras = keras
        self.cls = _import_class(cls)
        if not (isinstance(self.cls, type) and issubclass(self.cls, keras.optimizers.Optimizer)):
            raise TargetUnavailable(f"{cls!r} is not a keras.optimizers.Optimizer subclass")
        self.options = dict(options)
        self.name = name or f"{self.cls.__module__}.{self.cls.__qualname__}"
        self.profile = profile or "paper"
        self.spec = spec
        accepted = set(inspect.signature(self.cls.__init__).parameters)
        self.accepted = accepted
        self.tunable = frozenset(axis for axis in _AXES if axis in accepted)
        if "weight_decay_mode" in accepted:
            self.weight_decay_modes = frozenset({"none", "l2", "decoupled", "decoupled_moving"})
        else:
            self.weight_decay_modes = frozenset({"none", "decoupled"})
        self.x64 = self.backend != "jax" or bool(keras.ops.convert_to_tensor(
            np.zeros(1), dtype="float64").dtype == "float64")
        self.dtypes = ("float64", "float32", "float16", "bfloat16") if self.x64 else \
            ("float32", "float16", "bfloat16")
        self.default_dtype = "float64" if self.x64 else "float32"

    def describe(self) -> str:
        x64 = ", x64 " + ("on" if self.x64 else "off") if self.backend == "jax" else ""
        return f"{self.name} (Keras {self.keras.__version__}, {self.backend} backend{x64})"

    # -------------------------------------------------------------- #

    def optimizer_kwargs(self, config: RAdamConfig) -> dict:
        """The constructor options that express ``config``."""
        kw = {
            "learning_rate": config.lr,
            "beta_1": config.beta1,
            "beta_2": config.beta2,
            "epsilon": config.eps,
            "weight_decay": config.weight_decay if config.weight_decay_mode != "none" else 0.0,
        }
        kw = {k: v for k, v in kw.items() if k in self.accepted}
        if "weight_decay_mode" in self.accepted:
            kw["weight_decay_mode"] = config.weight_decay_mode
        if "nonfinite" in self.accepted:
            kw["nonfinite"] = config.nonfinite
        for axis in self.tunable:
            kw[axis] = getattr(config, axis)
        return {**kw, **self.options}

    @contextlib.contextmanager
    def floatx(self, dtype: str):
        """Keras' floatx for building an optimizer of a ``dtype`` run."""
        config = self.keras.config
        previous = config.floatx()
        config.set_floatx("float64" if dtype == "float64" else "float32")
        try:
            yield
        finally:
            config.set_floatx(previous)

    def build(self, group, dtype: str):
        """(optimizer, variables) for one group, the optimizer already built."""
        keras = self.keras
        kwargs = self.optimizer_kwargs(group.config)
        try:
            with self.floatx(dtype):
                variables = [keras.Variable(np.asarray(p, dtype=np.float64), dtype=dtype, trainable=True)
                             for p in group.params]
                optimizer = self.cls(**kwargs)
                optimizer.build(variables)
        except Exception as exc:  # noqa: BLE001 - the target's own error
            raise TargetError(f"{self.name}(**{kwargs!r}) raised {type(exc).__name__}: {exc}", exc) from exc
        return optimizer, variables

    def open(self, groups, dtype: str) -> "KerasSession":
        if dtype not in self.dtypes:
            raise NotSupported(f"dtype {dtype} (Keras {self.backend} backend"
                               + (", x64 off)" if not self.x64 else ")"))
        return KerasSession(self, groups, dtype)


def _np(x) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x)).astype(np.float64)


class KerasSession(Session):
    """One optimizer per parameter group, each with its own Keras variables."""

    def __init__(self, target: KerasOptimizerTarget, groups, dtype: str) -> None:
        self.target, self.dtype = target, dtype
        self.groups = [target.build(g, dtype) for g in groups]
        self._given: list = []

    def _tensors(self, grads):
        from keras import ops

        if any(g is None for g in grads):
            raise NotSupported("a None gradient (Keras advances one step counter per optimizer, "
                               "also for variables it skips)")
        return [ops.convert_to_tensor(np.asarray(g, dtype=np.float64), dtype=self.dtype) for g in grads]

    def step(self, grads) -> None:
        given = []
        for (optimizer, variables), group_grads in zip(self.groups, grads):
            tensors = self._tensors(group_grads)
            given.extend((np.array(g), t) for g, t in zip(group_grads, tensors))
            try:
                optimizer.apply_gradients(zip(tensors, variables))
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"{self.target.name}.apply_gradients() raised "
                                  f"{type(exc).__name__}: {exc}", exc) from exc
        self._given = given

    def params(self) -> list:
        return [[_np(v.value) for v in variables] for _, variables in self.groups]

    def param_dtypes(self) -> list:
        from keras import backend

        return [[backend.standardize_dtype(v.dtype) for v in variables] for _, variables in self.groups]

    def last_inputs(self) -> dict:
        return {"grads": [(before, _np(t)) for before, t in self._given]}

    def add_group(self, group) -> None:
        self.groups.append(self.target.build(group, self.dtype))

    def save(self) -> bytes:
        stores = []
        for optimizer, _ in self.groups:
            store: dict = {}
            try:
                optimizer.save_own_variables(store)
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"{self.target.name}.save_own_variables() raised "
                                  f"{type(exc).__name__}: {exc}", exc) from exc
            stores.append(store)
        return pickle.dumps(stores)

    def restore(self, blob: bytes) -> None:
        stores = pickle.loads(blob)
        if len(stores) != len(self.groups):
            raise TargetError(f"saved state has {len(stores)} optimizers, the session has {len(self.groups)}")
        for (optimizer, _), store in zip(self.groups, stores):
            if len(store) != len(optimizer.variables):
                raise TargetError(
                    f"{self.target.name}: the saved state has {len(store)} variables but a fresh, built "
                    f"optimizer has {len(optimizer.variables)} (load_own_variables would skip loading)")
            try:
                optimizer.load_own_variables(store)
            except Exception as exc:  # noqa: BLE001
                raise TargetError(f"{self.target.name}.load_own_variables() raised "
                                  f"{type(exc).__name__}: {exc}", exc) from exc

    def run_stream(self, grads_at, steps: int, record) -> list:
        backend = self.target.backend
        if backend == "jax":
            return self._run_stream_jax(grads_at, steps, record)
        if backend == "tensorflow":
            return self._run_stream_tf(grads_at, steps, record)
        return super().run_stream(grads_at, steps, record)

    def _stacked(self, grads_at, steps: int):
        rows = [grads_at(t) for t in range(1, steps + 1)]
        if any(g is None for row in rows for group in row for g in group):
            raise NotSupported("a None gradient (Keras advances one step counter per optimizer)")
        if any(len(row) != len(self.groups) for row in rows):
            raise NotSupported("a group added part-way through a stream")
        return [[np.stack([np.asarray(row[i][j], dtype=np.float64) for row in rows])
                 for j in range(len(rows[0][i]))] for i in range(len(self.groups))]

    def _run_stream_jax(self, grads_at, steps: int, record) -> list:
        """The whole stream under one ``jax.jit``-compiled ``lax.scan`` of ``stateless_apply``."""
        import jax
        import jax.numpy as jnp

        stacked = [[jnp.asarray(a, dtype=self.dtype) for a in group] for group in self._stacked(grads_at, steps)]
        optimizers = [opt for opt, _ in self.groups]
        carry0 = ([[v.value for v in variables] for _, variables in self.groups],
                  [[v.value for v in opt.variables] for opt in optimizers])

        def body(carry, grads):
            trainable, opt_vars = carry
            new_t, new_o = [], []
            for opt, tv, ov, g in zip(optimizers, trainable, opt_vars, grads):
                tv, ov = opt.stateless_apply(ov, g, tv)
                new_t.append(tv)
                new_o.append(ov)
            return (new_t, new_o), new_t

        try:
            (trainable, opt_vars), history = jax.jit(lambda c, s: jax.lax.scan(body, c, s))(carry0, stacked)
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.target.name}.stateless_apply() under jax.jit raised "
                              f"{type(exc).__name__}: {exc}", exc) from exc
        for (opt, variables), tv, ov in zip(self.groups, trainable, opt_vars):
            for var, value in zip(variables, tv):
                var.assign(value)
            for var, value in zip(opt.variables, ov):
                var.assign(value)
        host = jax.device_get(history)
        return [[[np.asarray(a[t - 1]).astype(np.float64) for a in group] for group in host]
                for t in range(1, steps + 1) if record(t)]

    def _run_stream_tf(self, grads_at, steps: int, record) -> list:
        """One ``tf.function`` per optimizer, called once per step."""
        import tensorflow as tf

        stacked = self._stacked(grads_at, steps)
        def compiled(opt, variables):  # a closure: tf.function must not see the variables as arguments
            return tf.function(lambda gs: opt.apply_gradients(zip(gs, variables)))

        fns = [compiled(opt, variables) for opt, variables in self.groups]
        out = []
        try:
            for t in range(1, steps + 1):
                for fn, group in zip(fns, stacked):
                    fn([tf.constant(a[t - 1], dtype=self.dtype) for a in group])
                if record(t):
                    out.append(self.params())
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.target.name}.apply_gradients() under tf.function raised "
                              f"{type(exc).__name__}: {exc}", exc) from exc
        return out
