"""Adapter for a function with the spec's signature,
``step(params, grads, state, config) -> (params, state)``.

The function gets the whole :class:`~radam_ref.RAdamConfig`, so every axis is
tunable.  ``params`` and ``grads`` are lists of NumPy arrays of the run's dtype;
the initial state comes from ``init(params)`` (the target module's ``init`` when
it has one, else :func:`radam_ref.init`).  A functional step must not write any
of its inputs; with ``in_place=True`` (an API like ``step_`` of
``radam_ref.backends.numpy``) it updates ``params`` and ``state`` in place and
must leave only ``grads`` alone.  Differentiation runs the same function on
float64 torch tensors with autograd, when it accepts them.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np

from radam_ref import RAdamConfig

from .base import NotSupported, Session, Target, TargetError

__all__ = ["StepFunctionTarget"]


def _leaves(tree) -> list:
    """Arrays inside a (nested) tuple/list/dict/NamedTuple, in a fixed order."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            for k in node:
                walk(node[k])
        elif isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
        elif hasattr(node, "shape") and hasattr(node, "dtype"):
            out.append(node)

    walk(tree)
    return out


class StepFunctionTarget(Target):
    """A spec-signature step function (functional, or in place) as a target."""

    def __init__(self, fn, init=None, *, name: str | None = None, profile: str | None = None,
                 spec: tuple | None = None, in_place: bool = False, kwargs: dict | None = None,
                 dtypes: tuple | None = None) -> None:
        if init is None:
            from radam_ref import init as spec_init

            init = spec_init
        self.fn, self.init_fn, self.in_place = fn, init, in_place
        self.kwargs = dict(kwargs or {})
        self.name = name or f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', fn)}"
        self.profile = profile or "paper"
        self.spec = spec
        self.tunable = frozenset(f.name for f in dataclasses.fields(RAdamConfig))
        self.weight_decay_modes = frozenset({"none", "l2", "decoupled", "decoupled_moving"})
        self.dtypes = dtypes or ("float64", "float32", "float16")
        self.features = frozenset({"state_dict", "side_effects"} | (set() if in_place else {"autodiff"}))

    def open(self, groups, dtype: str) -> "StepFunctionSession":
        if dtype not in self.dtypes:
            raise NotSupported(f"dtype {dtype}")
        if len(groups) != 1:
            raise NotSupported("several parameter groups (a step function takes one config)")
        return StepFunctionSession(self, groups[0], dtype)

    def call(self, params, grads, state, config):
        try:
            result = self.fn(params, grads, state, config, **self.kwargs)
        except NotSupported:
            raise
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.name}(params, grads, state, config) raised "
                              f"{type(exc).__name__}: {exc}", exc) from exc
        if self.in_place:
            if isinstance(result, tuple) and len(result) == 2:
                return result
            return params, state
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TargetError(f"{self.name} returned {type(result).__name__}, expected (params, state)")
        return result

    def differentiate(self, params0, grads, config: RAdamConfig, dtype: str, cotangent):
        if self.in_place:
            raise NotSupported("differentiating an in-place step")
        try:
            import torch
        except ImportError as exc:  # pragma: no cover
            raise NotSupported("differentiation needs torch") from exc
        tdtype = getattr(torch, dtype)
        x0 = [torch.tensor(np.asarray(p), dtype=tdtype, requires_grad=True) for p in params0]
        gs = [[torch.tensor(np.asarray(g), dtype=tdtype, requires_grad=True) for g in step] for step in grads]
        try:
            params = list(x0)
            state = self.init_fn(params)
        except Exception as exc:  # noqa: BLE001
            raise NotSupported(f"{self.name} does not run on torch tensors ({type(exc).__name__}: {exc})") from exc
        for step in gs:
            params, state = self.call(params, step, state, config)
            params = list(params)
        loss = sum((torch.tensor(np.asarray(c), dtype=tdtype) * p).sum() for c, p in zip(cotangent, params))
        flat = [g for step in gs for g in step]
        derivs = torch.autograd.grad(loss, x0 + flat, allow_unused=True)
        conv = [np.zeros(v.shape) if d is None else d.detach().to(torch.float64).numpy().copy()
                for d, v in zip(derivs, x0 + flat)]
        d_params = conv[: len(x0)]
        rest = conv[len(x0):]
        d_grads = [[rest.pop(0) for _ in step] for step in gs]
        return d_params, d_grads


def _checked_params(name: str, new_params, old_params) -> list:
    """The returned parameters as arrays, or a TargetError naming what was expected."""
    expected = f"a list of {len(old_params)} arrays shaped {[tuple(np.shape(p)) for p in old_params]}"
    if not isinstance(new_params, (list, tuple)) or len(new_params) != len(old_params):
        raise TargetError(f"{name} returned params of type {type(new_params).__name__}"
                          f"{'' if not hasattr(new_params, '__len__') else f' (length {len(new_params)})'}; "
                          f"expected {expected}")
    out = []
    for p, old in zip(new_params, old_params):
        arr = np.asarray(p) if hasattr(p, "__array__") or isinstance(p, (list, tuple, float, int)) else None
        if arr is None or arr.dtype.kind not in "fciub" or arr.shape != np.shape(old):
            got = type(p).__name__ if arr is None else f"{type(p).__name__} of dtype {arr.dtype}, shape {arr.shape}"
            raise TargetError(f"{name} returned a parameter as {got}; expected {expected}")
        out.append(arr)
    return out


class StepFunctionSession(Session):
    def __init__(self, target: StepFunctionTarget, group, dtype: str) -> None:
        self.target, self.dtype, self.config = target, dtype, group.config
        self.np_dtype = np.dtype(dtype)
        self.params_list = [np.array(p, dtype=self.np_dtype) for p in group.params]
        try:
            self.state = target.init_fn(self.params_list)
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"init of {target.name} raised {type(exc).__name__}: {exc}", exc) from exc
        self._inputs = {}

    def step(self, grads) -> None:
        (group,) = grads
        if any(g is None for g in group):
            raise NotSupported("a None gradient (the step function takes one array per parameter)")
        gs = [np.array(g, dtype=self.np_dtype) for g in group]
        given_grads = [g.copy() for g in gs]
        params_in, state_in = self.params_list, self.state
        if not self.target.in_place:
            before_params = [p.copy() for p in params_in]
            before_state = [np.array(x, copy=True) for x in _leaves(state_in)]
        new_params, new_state = self.target.call(params_in, gs, state_in, self.config)
        inputs = {"grads": list(zip(given_grads, [np.array(g, dtype=np.float64) for g in gs]))}
        if not self.target.in_place:
            inputs["params"] = list(zip(before_params, [np.array(p) for p in params_in]))
            inputs["state"] = list(zip(before_state, [np.array(x) for x in _leaves(state_in)]))
        self._inputs = inputs
        self.params_list = _checked_params(self.target.name, new_params, params_in)
        self.state = new_state

    def params(self) -> list:
        return [[np.array(p, dtype=np.float64) for p in self.params_list]]

    def param_dtypes(self) -> list:
        return [[str(np.asarray(p).dtype) for p in self.params_list]]

    def last_inputs(self) -> dict:
        return {k: [(np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)) for b, a in v]
                for k, v in self._inputs.items()}

    def save(self) -> bytes:
        return pickle.dumps(copy.deepcopy(self.state))

    def restore(self, blob: bytes) -> None:
        self.state = pickle.loads(blob)
