"""Adapter for any ``torch.optim.Optimizer`` subclass, built as ``cls(params, **kwargs)``.

What the target is told is read from its constructor's signature:

* always: ``lr``, ``betas``, ``eps``, ``weight_decay`` (0 for weight-decay mode
  ``"none"``), per parameter group;
* ``maximize`` and every other :class:`~radam_ref.RAdamConfig` field the
  constructor accepts by name (``threshold``, ``eps_placement``, ...);
* weight-decay mode: a ``weight_decay_mode`` argument if it has one, else
  torch's convention ``decoupled_weight_decay`` (False: L2, True: decoupled).

Gradients are handed over as ``param.grad`` tensors that the adapter keeps, so
the side-effects check can see whether the step wrote into them.  A gradient of
``None`` leaves ``param.grad`` as ``None``.  ``state_dict()`` snapshots go through
``torch.save``/``torch.load`` (a real serialisation round trip).
Differentiation uses the optimizer's ``differentiable=True`` mode when it has one.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
from typing import Any

import numpy as np

from radam_ref import RAdamConfig

from .base import NotSupported, Session, Target, TargetError

__all__ = ["TorchOptimizerTarget"]

_AXES = tuple(
    f.name for f in dataclasses.fields(RAdamConfig)
    if f.name not in ("lr", "betas", "eps", "weight_decay", "profile", "nonfinite", "weight_decay_mode")
)


def _torch():
    import torch

    return torch


def _accepted(cls) -> tuple[set, bool]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):  # pragma: no cover
        return set(), True
    names = set(sig.parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    return names, var_kw


class TorchOptimizerTarget(Target):
    """A ``torch.optim.Optimizer`` subclass as a conformance target."""

    dtypes = ("float64", "float32", "float16", "bfloat16", "complex128", "complex64")

    def __init__(self, cls, kwargs: dict | None = None, *, name: str | None = None,
                 profile: str | None = None, spec: tuple | None = None) -> None:
        self.cls = cls
        self.kwargs = dict(kwargs or {})
        self.name = name or f"{cls.__module__}.{cls.__qualname__}"
        self.accepted, _ = _accepted(cls)
        if profile is None:
            profile = "paper"
        self.profile = profile
        self.spec = spec
        tunable = {axis for axis in _AXES if axis in self.accepted}
        self.tunable = frozenset(tunable)
        if "weight_decay_mode" in self.accepted:
            self.weight_decay_modes = frozenset({"none", "l2", "decoupled", "decoupled_moving"})
        elif "decoupled_weight_decay" in self.accepted:
            self.weight_decay_modes = frozenset({"none", "l2", "decoupled"})
        features = {"param_groups", "add_param_group", "state_dict", "grad_none", "complex",
                    "side_effects"}
        if "differentiable" in self.accepted and not self.kwargs.get("foreach") \
                and not self.kwargs.get("fused"):
            features.add("autodiff")
        self.features = frozenset(features)

    # -------------------------------------------------------------- #

    def group_kwargs(self, config: RAdamConfig) -> dict:
        """The constructor / param-group options that express ``config``."""
        kw: dict[str, Any] = {
            "lr": config.lr,
            "betas": tuple(config.betas),
            "eps": config.eps,
            "weight_decay": config.weight_decay if config.weight_decay_mode != "none" else 0.0,
        }
        mode = config.weight_decay_mode
        if "weight_decay_mode" in self.accepted:
            kw["weight_decay_mode"] = mode
        elif "decoupled_weight_decay" in self.accepted and mode in ("l2", "decoupled"):
            kw["decoupled_weight_decay"] = mode == "decoupled"
        for axis in self.tunable:
            kw[axis] = getattr(config, axis)
        return kw

    def _tensor(self, values, dtype: str, requires_grad: bool = False):
        torch = _torch()
        return torch.tensor(np.asarray(values), dtype=getattr(torch, dtype), requires_grad=requires_grad)

    def _build(self, groups, dtype: str, extra: dict | None = None):
        torch_groups, tensors = [], []
        for group in groups:
            ps = [self._tensor(p, dtype) for p in group.params]
            tensors.append(ps)
            torch_groups.append({"params": ps, **self.group_kwargs(group.config)})
        first = self.group_kwargs(groups[0].config)
        kwargs = {**first, **self.kwargs, **(extra or {})}
        try:
            opt = self.cls(torch_groups, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the target's own error
            raise TargetError(f"{self.name}(params, **{kwargs!r}) raised {type(exc).__name__}: {exc}", exc) from exc
        return opt, tensors

    def open(self, groups, dtype: str) -> "TorchSession":
        if dtype not in self.dtypes:
            raise NotSupported(f"dtype {dtype}")
        if len(groups) > 1 and "param_groups" not in self.features:
            raise NotSupported("several parameter groups")
        opt, tensors = self._build(groups, dtype)
        return TorchSession(self, opt, tensors, dtype)

    def differentiate(self, params0, grads, config: RAdamConfig, dtype: str, cotangent):
        if "autodiff" not in self.features:
            raise NotSupported("differentiable=True" if "differentiable" in self.accepted
                               else "differentiating through the step")
        torch = _torch()
        x0 = [self._tensor(p, dtype, requires_grad=True) for p in params0]
        ps = [x.clone() for x in x0]
        gs = [[self._tensor(g, dtype, requires_grad=True) for g in step] for step in grads]
        kwargs = {**self.group_kwargs(config), **self.kwargs, "differentiable": True}
        try:
            opt = self.cls([{"params": ps}], **kwargs)
            for step in gs:
                for p, g in zip(ps, step):
                    p.grad = g
                opt.step()
            loss = sum((self._tensor(c, dtype) * p).sum() for c, p in zip(cotangent, ps))
            flat = [g for step in gs for g in step]
            derivs = torch.autograd.grad(loss, x0 + flat, allow_unused=True)
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"differentiating through {self.name}.step() raised "
                              f"{type(exc).__name__}: {exc}", exc) from exc

        def arr(d, like):
            if d is None:
                return np.zeros(like.shape)
            return _to_numpy(d.detach())

        d_params = [arr(d, x) for d, x in zip(derivs[: len(x0)], x0)]
        rest = list(derivs[len(x0):])
        d_grads = []
        for step in gs:
            d_grads.append([arr(rest.pop(0), g) for g in step])
        return d_params, d_grads


def _to_numpy(t) -> np.ndarray:
    torch = _torch()
    t = t.detach().to("cpu")
    if t.is_complex():
        return t.to(torch.complex128).numpy().copy()
    return t.to(torch.float64).numpy().copy()


class TorchSession(Session):
    def __init__(self, target: TorchOptimizerTarget, opt, tensors, dtype: str) -> None:
        self.target, self.opt, self.tensors, self.dtype = target, opt, tensors, dtype
        self._given: list = []

    def step(self, grads) -> None:
        given = []
        try:
            for ps, gs in zip(self.tensors, grads):
                for p, g in zip(ps, gs):
                    if g is None:
                        p.grad = None
                    else:
                        tg = self.target._tensor(g, self.dtype)
                        p.grad = tg
                        given.append((np.array(g), tg))
        except Exception as exc:  # noqa: BLE001 - e.g. the target changed a parameter's dtype
            raise TargetError(f"assigning param.grad for {self.target.name} raised {type(exc).__name__}: {exc}",
                              exc) from exc
        self._given = given
        try:
            self.opt.step()
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.target.name}.step() raised {type(exc).__name__}: {exc}", exc) from exc

    def params(self) -> list:
        return [[_to_numpy(p) for p in ps] for ps in self.tensors]

    def param_dtypes(self) -> list:
        return [[str(p.dtype).replace("torch.", "") for p in ps] for ps in self.tensors]

    def last_inputs(self) -> dict:
        return {"grads": [(before, _to_numpy(t)) for before, t in self._given]}

    def add_group(self, group) -> None:
        ps = [self.target._tensor(p, self.dtype) for p in group.params]
        try:
            self.opt.add_param_group({"params": ps, **self.target.group_kwargs(group.config)})
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.target.name}.add_param_group() raised {type(exc).__name__}: {exc}",
                              exc) from exc
        self.tensors.append(ps)

    def save(self) -> bytes:
        torch = _torch()
        buffer = io.BytesIO()
        try:
            torch.save(self.opt.state_dict(), buffer)
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.target.name}.state_dict() raised {type(exc).__name__}: {exc}", exc) from exc
        return buffer.getvalue()

    def restore(self, blob: bytes) -> None:
        torch = _torch()
        try:
            state = torch.load(io.BytesIO(blob), weights_only=True)
        except Exception:  # noqa: BLE001 - a target with non-tensor state
            state = torch.load(io.BytesIO(blob), weights_only=False)
        try:
            self.opt.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001
            raise TargetError(f"{self.target.name}.load_state_dict() raised {type(exc).__name__}: {exc}",
                              exc) from exc
