"""Built-in targets and the resolution of ``TARGET`` strings.

A TARGET is one of

* a built-in name (:data:`BUILTIN_TARGETS`): ``torch.optim.RAdam``,
  ``optax.radam``, ``radam_ref.step``, ``radam_ref.optax_transform``,
  ``radam_ref.backends.numpy``, ``radam_ref.backends.torch``; each is imported
  only when asked for, and reported "not installed" when its import fails;
* ``module:attr``, where ``attr`` is (a) a ``torch.optim.Optimizer`` subclass,
  built as ``cls(params, **kwargs)``; (b) a function with the spec's signature
  ``step(params, grads, state, config)`` (its module's ``init`` builds the
  state, else :func:`radam_ref.init`); (c) an optax-style factory returning an
  ``(init, update)`` pair; or (d) a :class:`~.base.Target` subclass or instance
  (the adapter protocol), built as ``cls(**kwargs)``.

Keyword arguments (``--kwargs JSON``) go to the constructor or factory.  Two keys
are the adapters' own: ``x64`` and ``jit`` for optax-style targets.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Callable

from .base import Target

__all__ = [
    "BUILTIN_TARGETS",
    "ALL_TARGETS",
    "TargetUnavailable",
    "resolve_target",
    "target_label",
]


class TargetUnavailable(Exception):
    """A target could not be imported or built (a usage error, exit status 2)."""


def _spec_step(kwargs):
    import radam_ref
    from .step_fn import StepFunctionTarget

    return StepFunctionTarget(radam_ref.step, radam_ref.init, name="radam_ref.step", profile="paper",
                              spec=("radam_ref.step", dict(kwargs)), kwargs=kwargs)


def _spec_optax(kwargs):
    import optax  # noqa: F401 - the adapter composes with optax

    import radam_ref
    from .optax_pair import OptaxTarget

    return OptaxTarget(radam_ref.optax_transform, kwargs, name="radam_ref.optax_transform",
                       profile="paper", spec=("radam_ref.optax_transform", dict(kwargs)))


def _torch_radam(kwargs):
    import torch

    from .torch_optim import TorchOptimizerTarget

    kwargs = {"foreach": False, **kwargs}
    profile = "torch_decoupled" if kwargs.get("decoupled_weight_decay") else "torch"
    return TorchOptimizerTarget(torch.optim.RAdam, kwargs, name="torch.optim.RAdam", profile=profile,
                                spec=("torch.optim.RAdam", dict(kwargs)))


def _optax_radam(kwargs):
    import optax

    from .optax_pair import OptaxTarget

    return OptaxTarget(optax.radam, kwargs, name="optax.radam", profile="optax",
                       spec=("optax.radam", dict(kwargs)))


def _numpy_backend(kwargs):
    module = importlib.import_module("radam_ref.backends.numpy")
    from .step_fn import StepFunctionTarget

    init = getattr(module, "init", None)
    return StepFunctionTarget(module.step_, init, name="radam_ref.backends.numpy", profile="paper",
                              spec=("radam_ref.backends.numpy", dict(kwargs)), in_place=True,
                              kwargs=kwargs, dtypes=("float64", "float32", "float16"))


def _torch_backend(kwargs):
    module = importlib.import_module("radam_ref.backends.torch")
    from .torch_optim import TorchOptimizerTarget

    return TorchOptimizerTarget(module.RAdam, kwargs, name="radam_ref.backends.torch", profile="paper",
                                spec=("radam_ref.backends.torch", dict(kwargs)))


#: Built-in target names and how each is built from ``kwargs``.
BUILTIN_TARGETS: dict[str, Callable] = {
    "radam_ref.step": _spec_step,
    "radam_ref.optax_transform": _spec_optax,
    "radam_ref.backends.numpy": _numpy_backend,
    "radam_ref.backends.torch": _torch_backend,
    "torch.optim.RAdam": _torch_radam,
    "optax.radam": _optax_radam,
}

#: What ``radam-ref conformance --all`` checks: (name, kwargs), in table order.
ALL_TARGETS: tuple = (
    ("radam_ref.step", {}),
    ("radam_ref.backends.numpy", {}),
    ("radam_ref.backends.torch", {}),
    ("radam_ref.optax_transform", {"x64": True}),
    ("radam_ref.optax_transform", {}),
    ("torch.optim.RAdam", {"foreach": False}),
    ("torch.optim.RAdam", {"foreach": True}),
    ("optax.radam", {"x64": True}),
    ("optax.radam", {}),
)


def target_label(name: str, kwargs: dict | None) -> str:
    """How tables name a (target, kwargs) pair, e.g. ``optax.radam x64=True``."""
    kwargs = dict(kwargs or {})
    if name in ("optax.radam", "radam_ref.optax_transform"):
        kwargs.setdefault("x64", False)
    if not kwargs:
        return name
    return name + " " + " ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))


def _import_attr(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is a usage error
        raise TargetUnavailable(f"cannot import module {module_name!r} of target {spec!r}: "
                                f"{type(exc).__name__}: {exc}") from exc
    module = obj
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetUnavailable(f"module {module_name!r} has no attribute {attr!r} "
                                    f"(target {spec!r})") from None
    return module, obj


def _is_torch_optimizer(obj) -> bool:
    if not isinstance(obj, type) or "torch" not in sys.modules:
        return False
    import torch

    return issubclass(obj, torch.optim.Optimizer)


def resolve_target(target, kwargs: dict | None = None, *, profile: str | None = None) -> Target:
    """Build the :class:`Target` for a TARGET string (or pass a Target through).

    ``profile`` overrides the profile the target claims.  Raises
    :class:`TargetUnavailable` (naming what failed) when it cannot be built.
    """
    kwargs = dict(kwargs or {})
    if isinstance(target, Target):
        built = target
    elif isinstance(target, str) and target in BUILTIN_TARGETS:
        try:
            built = BUILTIN_TARGETS[target](kwargs)
        except ImportError as exc:
            raise TargetUnavailable(f"built-in target {target!r} is not installed "
                                    f"({type(exc).__name__}: {exc})") from exc
        except AttributeError as exc:
            raise TargetUnavailable(f"built-in target {target!r} is not available ({exc})") from exc
    elif isinstance(target, str) and ":" in target:
        module, obj = _import_attr(target)
        built = _classify(obj, module, kwargs, target)
    elif isinstance(target, str):
        raise TargetUnavailable(
            f"unknown target {target!r}: use a built-in name ({', '.join(BUILTIN_TARGETS)}) "
            "or module:attr"
        )
    else:
        built = _classify(target, inspect.getmodule(target), kwargs, None)
    if profile is not None and profile != "auto":
        from radam_ref import PROFILES

        if profile not in PROFILES:
            raise TargetUnavailable(f"unknown profile {profile!r} (known: {sorted(PROFILES)}, auto)")
        built.profile = profile
    return built


def _classify(obj, module, kwargs: dict, spec_string: str | None) -> Target:
    from .optax_pair import OptaxTarget
    from .step_fn import StepFunctionTarget
    from .torch_optim import TorchOptimizerTarget

    spec = (spec_string, dict(kwargs)) if spec_string else None
    name = spec_string or getattr(obj, "__qualname__", repr(obj))
    if isinstance(obj, Target):
        return obj
    if isinstance(obj, type) and issubclass(obj, Target):
        built = obj(**kwargs)
        if built.spec is None:
            built.spec = spec
        return built
    if _is_torch_optimizer(obj):
        return TorchOptimizerTarget(obj, kwargs, name=name, spec=spec)
    if not callable(obj):
        raise TargetUnavailable(f"target {name!r} is not callable (a class, a function or a factory)")
    try:
        params = list(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        params = []
    if "grads" in params and "state" in params:
        init = getattr(module, "init", None) if module is not None else None
        in_place = getattr(obj, "__name__", "").endswith("_")
        return StepFunctionTarget(obj, init if callable(init) else None, name=name, spec=spec,
                                  in_place=in_place, kwargs=kwargs)
    return OptaxTarget(obj, kwargs, name=name, spec=spec)
