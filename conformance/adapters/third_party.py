"""Built-in adapters for the RAdams people already have installed.

Each third-party RAdam is a ``torch.optim.Optimizer`` subclass, so the generic
:class:`~.torch_optim.TorchOptimizerTarget` drives it; what this module adds is
*which* spec configuration each one follows, and how the spec's axes are set
through the optimizer's own options:

``timm.optim.RAdamLegacy``
    timm's copy of the authors' code before the 2021 change: threshold ρ_t ≥ 5,
    ε added to sqrt(v_t) before bias correction, decoupled decay
    θ − (αλ)θ on every step, SGD with bias-corrected momentum before
    rectification: the ``timm`` profile.  No option selects an axis.
``timm.optim.RAdam``
    a re-export of ``torch.optim.RAdam`` (``from torch.optim import RAdam`` in
    ``timm/optim/__init__.py``): the same class, so the same adapter and claim.
``torch_optimizer.RAdam``
    the same update as timm's legacy class: the ``timm`` profile.
``pytorch_optimizer.RAdam``
    options mapped to axes (:func:`pytorch_optimizer_options`):
    ``n_sma_threshold`` → threshold (always compared with ≥);
    ``degenerated_to_sgd`` → before rectification (True: SGD with momentum,
    False: no update); ``weight_decouple`` → weight-decay mode (False: L2;
    True: decoupled θ·(1 − αλ), applied on the steps that move θ, which with
    ``degenerated_to_sgd=True`` is every step); ``maximize`` → maximize.
    ``fixed_decay=True`` (θ·(1 − λ), not scaled by α) has no spec equivalent.
    Its defaults claim the ``authors`` axes with the multiplicative decay form.
the authors' ``radam.py`` (LiyuanLucasLiu/RAdam: ``RAdam``, ``PlainRAdam``)
    the ``authors`` profile; ``degenerated_to_sgd`` → before rectification.  It
    is not a package: give it as a file path, ``path/to/radam.py:RAdam``, or set
    ``RADAM_REF_AUTHORS_FILE`` for ``--all``.  This project never ships it.

Why timm is loaded by file location: ``import timm`` imports torchvision (its
model zoo), which a plain optimizer check must not need, and fails where it is
absent.  :func:`load_timm_radam` finds timm's directory without executing
``timm/__init__.py`` and loads only ``timm/optim/radam.py`` (and the
``_helpers`` module it imports relatively) under a private package name.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import pathlib
import sys
import types

from radam_ref import PROFILES, RAdamConfig

from .base import NotSupported
from .torch_optim import TorchOptimizerTarget

__all__ = [
    "AUTHORS_FILE_VARIABLE",
    "MappedTorchTarget",
    "authors_file",
    "load_file_module",
    "load_timm_radam",
    "looks_like_authors_module",
    "pytorch_optimizer_config",
    "pytorch_optimizer_options",
    "timm_radam_is_torch",
]

#: The environment variable that points ``--all`` at the authors' ``radam.py``.
AUTHORS_FILE_VARIABLE = "RADAM_REF_AUTHORS_FILE"

_MODES = frozenset({"none", "l2", "decoupled", "decoupled_moving"})


class MappedTorchTarget(TorchOptimizerTarget):
    """A torch optimizer whose spec axes are set through its own options.

    ``options(config) -> dict`` gives the constructor / param-group options
    that express ``config`` (beyond lr, betas, eps, weight_decay), or raises
    :class:`NotSupported` naming the axis value it cannot express.  ``claim``
    is the configuration the target follows with its default options.
    """

    def __init__(self, cls, kwargs: dict | None, *, name: str, profile: str, claim: RAdamConfig,
                 options, tunable, modes, spec: tuple | None = None) -> None:
        super().__init__(cls, kwargs, name=name, profile=profile, spec=spec)
        self.claim = claim
        self.options = options
        self.tunable = frozenset(tunable)
        self.weight_decay_modes = frozenset(modes)

    def claimed_config(self) -> RAdamConfig:
        return self.claim

    def unsupported(self, config: RAdamConfig) -> list[str]:
        out = super().unsupported(config)
        if not out:
            try:
                self.options(config)
            except NotSupported as exc:
                out.append(str(exc))
        return out

    def group_kwargs(self, config: RAdamConfig) -> dict:
        options = self.options(config)
        # a code-path option the user gave (--kwargs, e.g. fixed_decay) also wins in each
        # param group: a group's own value would otherwise silently override the constructor's
        options.update({k: v for k, v in self.kwargs.items() if k in options})
        return {
            "lr": config.lr,
            "betas": tuple(config.betas),
            "eps": config.eps,
            "weight_decay": config.weight_decay if config.weight_decay_mode != "none" else 0.0,
            **options,
        }


# --------------------------------------------------------------------------- #
# pytorch_optimizer
# --------------------------------------------------------------------------- #

def pytorch_optimizer_options(config: RAdamConfig) -> dict:
    """The ``pytorch_optimizer.RAdam`` options that express ``config``.

    Raises NotSupported for a value no option combination gives: decoupled decay
    on every step while steps before rectification do not move θ (it decays
    only when θ moves).  The fixed axes (comparison ≥, ε before bias correction,
    θ·(1 − αλ), no Nesterov) are checked by :meth:`Target.unsupported`.
    """
    sgd = config.before_rectification == "sgd_momentum"
    options = {"n_sma_threshold": config.threshold, "degenerated_to_sgd": sgd,
               "maximize": config.maximize, "fixed_decay": False}
    mode = config.weight_decay_mode
    if mode == "l2":
        options["weight_decouple"] = False
    elif mode == "decoupled" and not sgd and config.weight_decay:
        raise NotSupported("weight_decay_mode='decoupled' with before_rectification='none' "
                           "(pytorch_optimizer decays only on the steps that move θ)")
    else:
        options["weight_decouple"] = True
    return options


def pytorch_optimizer_config(options: dict | None = None, **hyper) -> RAdamConfig | None:
    """The spec configuration ``pytorch_optimizer.RAdam(**options)`` follows
    (None when it has no spec equivalent: ``fixed_decay=True`` with decay).

    ``hyper``: lr, betas, eps, weight_decay.
    """
    o = {"weight_decouple": True, "fixed_decay": False, "n_sma_threshold": 5, "degenerated_to_sgd": False,
         "maximize": False, **(options or {})}
    wd = hyper.get("weight_decay", 0.0)
    if o["fixed_decay"] and o["weight_decouple"] and wd:
        return None
    sgd = bool(o["degenerated_to_sgd"])
    if not wd:
        mode = "none"
    elif not o["weight_decouple"]:
        mode = "l2"
    else:
        mode = "decoupled" if sgd else "decoupled_moving"
    return PROFILES["authors"].config().replace(
        threshold=float(o["n_sma_threshold"]), comparison=">=",
        before_rectification="sgd_momentum" if sgd else "none", weight_decay_mode=mode,
        decay_form="multiply", maximize=bool(o["maximize"]), **hyper)


def pytorch_optimizer_target(kwargs: dict, name: str = "pytorch_optimizer.RAdam"):
    import pytorch_optimizer

    # The claim is the configuration it follows when given weight decay (its default λ is 0,
    # which would claim the mode "none" and leave the decay probes without decay to see):
    # decoupled on the steps that move θ.  fixed_decay=True has no spec equivalent with
    # decay (θ(1 − λ)): the claim stays, and the suite names the difference.
    options = {k: kwargs[k] for k in ("fixed_decay",) if k in kwargs}
    claim = (pytorch_optimizer_config(options, weight_decay=1.0)
             or pytorch_optimizer_config({**options, "fixed_decay": False}, weight_decay=1.0)).replace(weight_decay=0.0)
    return MappedTorchTarget(pytorch_optimizer.RAdam, kwargs, name=name, profile="authors", claim=claim,
                             options=pytorch_optimizer_options,
                             tunable={"threshold", "before_rectification", "maximize"}, modes=_MODES,
                             spec=("pytorch_optimizer.RAdam", dict(kwargs)))


# --------------------------------------------------------------------------- #
# torch_optimizer and timm
# --------------------------------------------------------------------------- #

def torch_optimizer_target(kwargs: dict, name: str = "torch_optimizer.RAdam"):
    import torch_optimizer

    return TorchOptimizerTarget(torch_optimizer.RAdam, kwargs, name=name, profile="timm",
                                spec=("torch_optimizer.RAdam", dict(kwargs)))


def _timm_optim_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("timm")  # finds the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("No module named 'timm'")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "optim"


_TIMM_PACKAGE = "_radam_ref_timm_optim"


def load_timm_radam():
    """``timm/optim/radam.py`` as a module, without executing ``timm/__init__``.

    timm's package import pulls in torchvision; the optimizer file needs only
    torch and its sibling ``_helpers``.  The file runs under a private package
    whose ``__path__`` is timm's optim directory, so its relative import finds
    ``_helpers`` there.
    """
    directory = _timm_optim_dir()
    if not (directory / "radam.py").is_file():
        raise ImportError(f"timm has no optim/radam.py (timm {_version('timm')})")
    name = _TIMM_PACKAGE + ".radam"
    if name in sys.modules:
        return sys.modules[name]
    package = sys.modules.get(_TIMM_PACKAGE)
    if package is None:
        package = types.ModuleType(_TIMM_PACKAGE)
        package.__path__ = [str(directory)]
        package.__package__ = _TIMM_PACKAGE
        sys.modules[_TIMM_PACKAGE] = package
    spec = importlib.util.spec_from_file_location(name, directory / "radam.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def timm_radam_is_torch() -> bool:
    """Whether timm's ``timm.optim.RAdam`` is ``torch.optim.RAdam``, read from
    ``timm/optim/__init__.py`` without executing timm (a ``from torch.optim
    import … RAdam …`` there, as in timm ≥ 1.0)."""
    init = _timm_optim_dir() / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch.optim" and node.level == 0:
            if any(alias.name == "RAdam" and alias.asname in (None, "RAdam") for alias in node.names):
                return True
    return False


def timm_legacy_target(kwargs: dict, name: str = "timm.optim.RAdamLegacy"):
    module = load_timm_radam()
    cls = getattr(module, "RAdamLegacy", None)
    if cls is None:
        raise ImportError(f"timm/optim/radam.py has no RAdamLegacy (timm {_version('timm')})")
    return TorchOptimizerTarget(cls, kwargs, name=name, profile="timm",
                                spec=("timm.optim.RAdamLegacy", dict(kwargs)))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------------- #
# the authors' radam.py, and any file given by path
# --------------------------------------------------------------------------- #

def authors_file() -> str:
    """The path in RADAM_REF_AUTHORS_FILE (ImportError saying what to do when unset)."""
    path = os.environ.get(AUTHORS_FILE_VARIABLE)
    if not path:
        raise ImportError(f"the authors' radam.py is not shipped: set {AUTHORS_FILE_VARIABLE} to the path of "
                          "radam.py from LiyuanLucasLiu/RAdam to include it")
    if not os.path.isfile(path):
        raise ImportError(f"{AUTHORS_FILE_VARIABLE}={path!r} is not a file")
    return os.path.abspath(path)


def load_file_module(path: str):
    """Load the Python file at ``path`` as a module (by location, under a private
    name derived from its absolute path, so two files never collide)."""
    path = os.path.abspath(path)
    digest = hashlib.sha1(path.encode()).hexdigest()[:12]
    name = f"_radam_ref_file_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path!r} as Python source")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def looks_like_authors_module(module) -> bool:
    """The authors' file, recognised by its shape: torch optimizers ``RAdam`` and
    ``PlainRAdam`` whose constructors take ``degenerated_to_sgd``."""
    import inspect

    for attr in ("RAdam", "PlainRAdam"):
        cls = getattr(module, attr, None)
        if not isinstance(cls, type):
            return False
        try:
            if "degenerated_to_sgd" not in inspect.signature(cls.__init__).parameters:
                return False
        except (TypeError, ValueError):
            return False
    return True


def authors_options(config: RAdamConfig) -> dict:
    """The authors' ``degenerated_to_sgd`` expresses before rectification; weight
    decay is decoupled on the steps that move θ (every step with SGD steps)."""
    sgd = config.before_rectification == "sgd_momentum"
    if config.weight_decay and config.weight_decay_mode == "l2":
        raise NotSupported("weight_decay_mode='l2' (the authors' code decays θ directly)")
    if config.weight_decay and config.weight_decay_mode == "decoupled" and not sgd:
        raise NotSupported("weight_decay_mode='decoupled' with before_rectification='none' "
                           "(the authors' code decays only on the steps that move θ)")
    return {"degenerated_to_sgd": sgd}


def authors_target(cls, kwargs: dict, *, name: str, spec: tuple):
    return MappedTorchTarget(cls, kwargs, name=name, profile="authors", claim=PROFILES["authors"].config(),
                             options=authors_options, tunable={"before_rectification"},
                             modes={"none", "decoupled", "decoupled_moving"}, spec=spec)


def authors_builtin(attr: str):
    """Factory of the ``authors.RAdam`` / ``authors.PlainRAdam`` built-ins."""

    def build(kwargs: dict):
        import torch  # noqa: F401 - the file needs it; a clear ImportError first

        path = authors_file()
        module = load_file_module(path)
        cls = getattr(module, attr, None)
        if cls is None:
            raise ImportError(f"{path} has no class {attr}")
        return authors_target(cls, kwargs, name=f"authors.{attr}", spec=(f"{path}:{attr}", dict(kwargs)))

    return build
