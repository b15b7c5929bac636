"""Built-in targets and the resolution of ``TARGET`` strings.

A TARGET is one of

* a built-in name (:data:`BUILTIN_TARGETS`): this project's own
  implementations, ``torch.optim.RAdam``, ``optax.radam`` and the third-party
  RAdams of :mod:`.third_party` (``timm.optim.RAdam``,
  ``timm.optim.RAdamLegacy``, ``torch_optimizer.RAdam``,
  ``pytorch_optimizer.RAdam``, ``authors.RAdam``, ``authors.PlainRAdam``); each
  is imported only when asked for, and reported "not installed" (with the
  reason) when that fails;
* ``PREFIX…`` for a prefix of :data:`PREFIX_TARGETS` (other kinds of target,
  e.g. a process speaking a protocol);
* ``path/to/file.py:attr``: ``attr`` of a Python file loaded by location;
* ``module:attr`` or a dotted ``module.attr``, where ``attr`` is (a) a
  ``torch.optim.Optimizer`` subclass, built as ``cls(params, **kwargs)``; (b) a
  function with the spec's signature ``step(params, grads, state, config)`` (its
  module's ``init`` builds the state, else :func:`radam_ref.init`); (c) an
  optax-style factory returning an ``(init, update)`` pair; (d) a
  :class:`~.base.Target` subclass or instance (the adapter protocol), built as
  ``cls(**kwargs)``; or (e) a ``keras.optimizers.Optimizer`` subclass, driven by
  :class:`~.keras_optimizer.KerasOptimizerTarget` (``backend`` and ``x64`` in
  ``kwargs`` choose how Keras runs; the backend is chosen before the target's
  module is imported when its name starts with ``keras``).

A known class or function is recognised by identity, not spelling:
``torch.optim:RAdam``, ``torch.optim.radam:RAdam`` and ``timm.optim.RAdam`` (a
re-export) are all ``torch.optim.RAdam``, with its adapter and its claim.

Keyword arguments (``--kwargs JSON``) go to the constructor or factory.  Keys
that name what the suite itself varies (hyperparameters, the spec's axes and
their spellings in other libraries) are refused by :func:`check_kwargs`; keys
that select the target's code path (``foreach``, ``x64``, ``jit``, …) pass.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Callable

from .base import Target

__all__ = [
    "BUILTIN_TARGETS",
    "ALL_TARGETS",
    "PREFIX_TARGETS",
    "SUITE_KWARGS",
    "TargetUnavailable",
    "check_kwargs",
    "known_name",
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


def _torch_radam(kwargs, name="torch.optim.RAdam"):
    import torch

    from .torch_optim import TorchOptimizerTarget

    kwargs = {"foreach": False, **kwargs}
    profile = "torch_decoupled" if kwargs.get("decoupled_weight_decay") else "torch"
    return TorchOptimizerTarget(torch.optim.RAdam, kwargs, name=name, profile=profile,
                                spec=(name, dict(kwargs)))


def _timm_radam(kwargs):
    from .third_party import timm_radam_is_torch

    if not timm_radam_is_torch():
        raise ImportError("this timm's optim/__init__.py does not re-export torch.optim.RAdam as RAdam")
    return _torch_radam(kwargs, name="timm.optim.RAdam")


def _third_party(attr):
    def build(kwargs):
        from . import third_party

        return getattr(third_party, attr)(kwargs)

    return build


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


def _keras_backend(kwargs):
    """The Keras 3 optimizer; ``backend`` (jax, torch, tensorflow) and ``x64`` select
    how Keras runs (one Keras backend per process: see :mod:`.keras_optimizer`)."""
    from .keras_optimizer import KerasOptimizerTarget

    return KerasOptimizerTarget("radam_ref.backends.keras:RAdam", name="radam_ref.backends.keras",
                                profile="paper", spec=("radam_ref.backends.keras", dict(kwargs)), **kwargs)


#: Built-in target names and how each is built from ``kwargs``.
BUILTIN_TARGETS: dict[str, Callable] = {
    "radam_ref.step": _spec_step,
    "radam_ref.optax_transform": _spec_optax,
    "radam_ref.backends.numpy": _numpy_backend,
    "radam_ref.backends.torch": _torch_backend,
    "radam_ref.backends.keras": _keras_backend,
    "torch.optim.RAdam": _torch_radam,
    "optax.radam": _optax_radam,
    "timm.optim.RAdam": _timm_radam,
    "timm.optim.RAdamLegacy": _third_party("timm_legacy_target"),
    "torch_optimizer.RAdam": _third_party("torch_optimizer_target"),
    "pytorch_optimizer.RAdam": _third_party("pytorch_optimizer_target"),
    "authors.RAdam": lambda kwargs: _authors("RAdam", kwargs),
    "authors.PlainRAdam": lambda kwargs: _authors("PlainRAdam", kwargs),
}


def _authors(attr, kwargs):
    from .third_party import authors_builtin

    return authors_builtin(attr)(kwargs)


def _exec_target(command: str, kwargs: dict):
    """``exec:COMMAND``: a port in any language behind the process protocol
    (:mod:`.exec_protocol`); ``kwargs`` may set ``timeout`` (s per request) and ``cwd``."""
    from .exec_protocol import ExecTarget, PortFailure

    try:
        return ExecTarget(command, **kwargs, spec=("exec:" + command, dict(kwargs)))
    except TypeError as exc:
        raise TargetUnavailable(f"exec target: {exc} (it accepts timeout and cwd)") from exc
    except (OSError, ValueError, PortFailure) as exc:
        raise TargetUnavailable(f"exec target {command!r} could not be started: {exc}") from exc


#: Other kinds of target, by prefix: ``prefix + rest`` is built as
#: ``PREFIX_TARGETS[prefix](rest, kwargs)`` (raise TargetUnavailable or ImportError).
PREFIX_TARGETS: dict[str, Callable] = {"exec:": _exec_target}

#: Known objects, recognised by identity whatever the spelling that reached them:
#: (built-in name, module that defines it, attribute).  Only modules already
#: imported are looked at.
KNOWN_OBJECTS: tuple = (
    ("torch.optim.RAdam", "torch.optim", "RAdam"),
    ("optax.radam", "optax", "radam"),
    ("torch_optimizer.RAdam", "torch_optimizer", "RAdam"),
    ("pytorch_optimizer.RAdam", "pytorch_optimizer", "RAdam"),
    ("timm.optim.RAdamLegacy", "_radam_ref_timm_optim.radam", "RAdamLegacy"),
    ("timm.optim.RAdamLegacy", "timm.optim", "RAdamLegacy"),
    ("radam_ref.step", "radam_ref", "step"),
    ("radam_ref.optax_transform", "radam_ref", "optax_transform"),
    ("radam_ref.backends.numpy", "radam_ref.backends.numpy", "step_"),
    ("radam_ref.backends.torch", "radam_ref.backends.torch", "RAdam"),
    ("radam_ref.backends.keras", "radam_ref.backends.keras", "RAdam"),
)

#: What ``radam-ref conformance --all`` checks: (name, kwargs), in table order.
ALL_TARGETS: tuple = (
    ("radam_ref.step", {}),
    ("radam_ref.backends.numpy", {}),
    ("radam_ref.backends.torch", {}),
    ("radam_ref.backends.keras", {}),
    ("radam_ref.optax_transform", {"x64": True}),
    ("radam_ref.optax_transform", {}),
    ("torch.optim.RAdam", {"foreach": False}),
    ("torch.optim.RAdam", {"foreach": True}),
    ("optax.radam", {"x64": True}),
    ("optax.radam", {}),
    ("timm.optim.RAdam", {}),
    ("timm.optim.RAdamLegacy", {}),
    ("torch_optimizer.RAdam", {}),
    ("pytorch_optimizer.RAdam", {}),
    ("authors.RAdam", {}),
    ("authors.PlainRAdam", {}),
)

#: ``--kwargs`` keys the suite sets or varies itself, and the option that covers each.
SUITE_KWARGS: dict[str, str] = {
    **{k: "a hyperparameter the suite draws in every check (choose checks with --check)"
       for k in ("lr", "learning_rate", "betas", "beta1", "beta2", "b1", "b2", "eps", "epsilon", "weight_decay")},
    "eps_root": "a hyperparameter the suite draws (choose checks with --check)",
    "threshold": "the threshold axis: set by --profile",
    "n_sma_threshold": "the threshold axis: set by --profile",
    "comparison": "the threshold comparison axis: set by --profile",
    "eps_placement": "the eps placement axis: set by --profile",
    "weight_decay_mode": "the weight-decay axis: set by --profile, varied by --check weight_decay_modes",
    "decoupled_weight_decay": "the weight-decay axis: set by --profile, varied by --check weight_decay_modes",
    "weight_decouple": "the weight-decay axis: set by --profile, varied by --check weight_decay_modes",
    "decay_form": "the decay-form axis: set by --profile",
    "before_rectification": "the before-rectification axis: set by --profile",
    "degenerated_to_sgd": "the before-rectification axis: set by --profile",
    "nesterov": "the Nesterov axis: set by --profile",
    "maximize": "varied by the suite: --check maximize",
    "nonfinite": "part of the spec configuration: set by --profile",
    "profile": "use --profile",
}


def check_kwargs(kwargs: dict) -> str | None:
    """Why ``kwargs`` cannot be given to a target (None: they can).

    A key the suite sets or varies (a hyperparameter, an axis of the spec under
    any library's spelling) would silently win over, or lose to, what each check
    asks for; the message names the suite option that covers it.
    """
    bad = [k for k in kwargs if k in SUITE_KWARGS]
    if not bad:
        return None
    parts = [f"{k!r} is {SUITE_KWARGS[k]}" for k in bad]
    return ("--kwargs: " + "; ".join(parts) + ". --kwargs is for options that select the target's "
            "code path (foreach, x64, jit, …)")


def known_name(obj) -> str | None:
    """The built-in name of ``obj`` when it is a known class or function."""
    for name, module_name, attr in KNOWN_OBJECTS:
        module = sys.modules.get(module_name)
        if module is not None and getattr(module, attr, None) is obj:
            return name
    return None


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


def _is_file_target(target: str) -> bool:
    path = target.rpartition(":")[0]
    return path.endswith(".py") or os.sep in path or "/" in path


def _import_dotted(target: str):
    """``a.b.c`` as module ``a.b`` attribute ``c`` (or ``a`` + ``b.c``), or None."""
    parts = target.split(".")
    if len(parts) < 2 or not all(p.isidentifier() for p in parts):
        return None
    try:
        if importlib.util.find_spec(parts[0]) is None:
            return None
    except (ImportError, ValueError):
        return None
    for cut in range(len(parts) - 1, 0, -1):
        spec = ".".join(parts[:cut]) + ":" + ".".join(parts[cut:])
        try:
            return spec, _import_attr(spec)
        except TargetUnavailable:
            continue
    return None


def _builtin(name: str, kwargs: dict) -> Target:
    try:
        return BUILTIN_TARGETS[name](kwargs)
    except ImportError as exc:
        raise TargetUnavailable(f"built-in target {name!r} is not installed "
                                f"({type(exc).__name__}: {exc})") from exc
    except AttributeError as exc:
        raise TargetUnavailable(f"built-in target {name!r} is not available ({exc})") from exc
    except TargetUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - an installed package that fails to import
        raise TargetUnavailable(f"built-in target {name!r} is installed but fails to load "
                                f"({type(exc).__name__}: {exc})") from exc


def _file_target(target: str, kwargs: dict) -> Target:
    from .third_party import authors_target, load_file_module, looks_like_authors_module

    path, _, attr = target.rpartition(":")
    if not os.path.isfile(path):
        raise TargetUnavailable(f"target {target!r}: no file {path!r}")
    try:
        module = load_file_module(path)
    except Exception as exc:  # noqa: BLE001 - the file's own error
        raise TargetUnavailable(f"cannot load {path!r} of target {target!r}: {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise TargetUnavailable(f"file {path!r} has no attribute {attr!r} (target {target!r})")
    spec_string = f"{os.path.abspath(path)}:{attr}"
    if looks_like_authors_module(module) and attr in ("RAdam", "PlainRAdam"):
        return authors_target(obj, kwargs, name=target, spec=(spec_string, dict(kwargs)))
    built = _classify(obj, module, kwargs, spec_string)
    built.name = target
    return built


def resolve_target(target, kwargs: dict | None = None, *, profile: str | None = None) -> Target:
    """Build the :class:`Target` for a TARGET string (or pass a Target through).

    ``profile`` overrides the profile the target claims.  Raises
    :class:`TargetUnavailable` (naming what failed) when it cannot be built.
    """
    kwargs = dict(kwargs or {})
    prefix = next((p for p in PREFIX_TARGETS if isinstance(target, str) and target.startswith(p)), None)
    if isinstance(target, Target):
        built = target
    elif prefix is not None:
        try:
            built = PREFIX_TARGETS[prefix](target[len(prefix):], kwargs)
        except ImportError as exc:
            raise TargetUnavailable(f"target {target!r} is not available ({type(exc).__name__}: {exc})") from exc
    elif isinstance(target, str) and target in BUILTIN_TARGETS:
        built = _builtin(target, kwargs)
    elif isinstance(target, str) and ":" in target and _is_file_target(target):
        built = _file_target(target, kwargs)
    elif isinstance(target, str) and ":" in target:
        _choose_keras_backend_first(target.partition(":")[0], kwargs)
        try:
            module, obj = _import_attr(target)
        except TargetUnavailable:
            alias = target.replace(":", ".")
            if alias in BUILTIN_TARGETS:  # e.g. timm.optim:RAdam when timm cannot be imported
                return resolve_target(alias, kwargs, profile=profile)
            raise
        built = _classify(obj, module, kwargs, target)
    elif isinstance(target, str):
        _choose_keras_backend_first(target, kwargs)
        found = _import_dotted(target)
        if found is None:
            raise TargetUnavailable(
                f"unknown target {target!r}: use a built-in name ({', '.join(BUILTIN_TARGETS)}), "
                "module:attr or path/to/file.py:attr"
            )
        spec_string, (module, obj) = found
        built = _classify(obj, module, kwargs, spec_string)
    else:
        built = _classify(target, inspect.getmodule(target), kwargs, None)
    if profile is not None and profile != "auto":
        from radam_ref import PROFILES

        if profile not in PROFILES:
            raise TargetUnavailable(f"unknown profile {profile!r} (known: {sorted(PROFILES)}, auto)")
        built.profile = profile
        if hasattr(built, "claim"):
            built.claim = PROFILES[profile].config()
    return built


def _choose_keras_backend_first(module_name: str, kwargs: dict) -> None:
    """Keras picks its backend once, when first imported: before importing a
    ``keras…`` or ``radam_ref.backends.keras…`` target, choose it as the built-in
    Keras target does (``backend``/``x64`` from ``kwargs``, :func:`.keras_optimizer.select_backend`),
    so that every spelling of a Keras optimizer runs on the same backend."""
    if "keras" in sys.modules:
        return
    if not (module_name == "keras" or module_name.startswith(("keras.", "radam_ref.backends.keras"))):
        return
    from .keras_optimizer import select_backend

    try:
        select_backend(kwargs.get("backend"), x64=bool(kwargs.get("x64", True)))
    except ImportError:
        pass  # the import of the target itself says what is missing


def _is_keras_optimizer(obj) -> bool:
    keras = sys.modules.get("keras")
    if not isinstance(obj, type) or keras is None:
        return False
    base = getattr(getattr(keras, "optimizers", None), "Optimizer", None)
    return isinstance(base, type) and issubclass(obj, base)


def _is_torch_optimizer(obj) -> bool:
    if not isinstance(obj, type) or "torch" not in sys.modules:
        return False
    import torch

    return issubclass(obj, torch.optim.Optimizer)


def _classify(obj, module, kwargs: dict, spec_string: str | None) -> Target:
    from .optax_pair import OptaxTarget
    from .step_fn import StepFunctionTarget
    from .torch_optim import TorchOptimizerTarget

    spec = (spec_string, dict(kwargs)) if spec_string else None
    name = spec_string or getattr(obj, "__qualname__", repr(obj))
    if isinstance(obj, Target):
        return obj
    builtin = known_name(obj)
    if builtin is not None:
        return _builtin(builtin, kwargs)
    if isinstance(obj, type) and issubclass(obj, Target):
        built = obj(**kwargs)
        if built.spec is None:
            built.spec = spec
        return built
    if _is_torch_optimizer(obj):
        return TorchOptimizerTarget(obj, kwargs, name=name, spec=spec)
    if _is_keras_optimizer(obj):
        from .keras_optimizer import KerasOptimizerTarget

        try:
            return KerasOptimizerTarget(obj, name=name, spec=spec, **kwargs)
        except TypeError as exc:
            raise TargetUnavailable(f"Keras optimizer target {name!r}: {exc}") from exc
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
