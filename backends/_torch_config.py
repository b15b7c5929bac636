"""Parameter-group options of the torch backend: validation and the spec config.

A group holds torch.optim.RAdam's keys (``lr``, ``betas``, ``eps``,
``weight_decay``, ``decoupled_weight_decay``, ``foreach``, ``capturable``,
``differentiable``) plus ``profile``, one optional override per axis of
:class:`radam_ref.RAdamConfig`, ``op_order``, ``state_dtype`` and ``fused``.
:func:`group_config` turns the group's current values into a validated
:class:`radam_ref.RAdamConfig` (cached), so the spec does all validation and every
math option comes from it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from radam_ref import RAdamConfig
from radam_ref._config import AXES as _SPEC_AXES

from . import _torch_fused_cpu as _fused

__all__ = ["AXES", "OP_ORDERS", "check_group_options", "group_config", "lr_value",
           "resolve_op_order"]

#: Arithmetic orders: ``"spec"`` (as :func:`radam_ref.step`) or ``"torch"`` (as
#: ``torch.optim.RAdam``).  The default is ``"torch"`` for the torch profiles.
OP_ORDERS = ("spec", "torch")

#: RAdamConfig axes that a parameter group may override (None: the profile's value).
AXES = _SPEC_AXES

_TORCH_PROFILES = ("torch", "torch_decoupled")


def lr_value(lr: Any) -> Any:
    """A Python number for the config; a 1-element tensor lr is read once."""
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise ValueError(f"Tensor lr must be 1-element, got shape {tuple(lr.shape)}")
        return float(lr.detach().reshape(()).item())
    return lr


def _has_torch_arithmetic(config: RAdamConfig) -> bool:
    """Whether torch.optim.RAdam's operation order is defined for these options."""
    return (config.eps_placement == "before_bias_correction" and not config.eps_root
            and not config.nesterov)


def resolve_op_order(config: RAdamConfig, op_order: str | None) -> str:
    """``op_order`` checked, or the default: torch's order for the torch profiles (unless
    an override leaves torch's arithmetic, e.g. nesterov), the spec's otherwise."""
    if op_order is None:
        if config.profile in _TORCH_PROFILES and _has_torch_arithmetic(config):
            return "torch"
        return "spec"
    if op_order not in OP_ORDERS:
        raise ValueError(f"Invalid op_order: {op_order!r} (choose one of {OP_ORDERS})")
    if op_order == "torch" and not _has_torch_arithmetic(config):
        raise ValueError(
            "Invalid op_order: 'torch' reproduces torch.optim.RAdam's arithmetic, which "
            "has eps_placement='before_bias_correction', eps_root=0 and no nesterov; got "
            f"eps_placement={config.eps_placement!r}, eps_root={config.eps_root!r}, "
            f"nesterov={config.nesterov!r}"
        )
    return op_order


@functools.lru_cache(maxsize=512)
def _config_from_key(key: tuple) -> RAdamConfig:
    (profile, lr, betas, eps, weight_decay, decoupled, axes) = key
    overrides = {name: value for name, value in axes if value is not None}
    if decoupled is not None:
        if not isinstance(decoupled, bool):
            raise TypeError(f"decoupled_weight_decay must be a bool or None, got {decoupled!r}")
        mode = "decoupled" if decoupled else "l2"
        if overrides.get("weight_decay_mode", mode) != mode:
            raise ValueError(
                f"Invalid weight_decay_mode: {overrides['weight_decay_mode']!r} contradicts "
                f"decoupled_weight_decay={decoupled!r}"
            )
        overrides["weight_decay_mode"] = mode
    if not isinstance(profile, str):
        raise TypeError(f"profile must be a string, got {profile!r}")
    return RAdamConfig.from_profile(
        profile, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **overrides
    )


def group_config(group: dict) -> RAdamConfig:
    """The validated :class:`radam_ref.RAdamConfig` of a parameter group.

    Built from the group's current values, so changes by learning-rate schedulers
    (``group["lr"]``) or by hand are honoured at the next step.
    """
    betas = group["betas"]
    if isinstance(betas, (list, tuple)):
        betas = tuple(float(b) if isinstance(b, torch.Tensor) else b for b in betas)
    key = (
        group["profile"],
        lr_value(group["lr"]),
        betas,
        group["eps"],
        group["weight_decay"],
        group["decoupled_weight_decay"],
        tuple((name, group[name]) for name in AXES),
    )
    try:
        return _config_from_key(key)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _config_from_key.__wrapped__(key)


def _check_state_dtype(state_dtype: Any) -> None:
    if state_dtype is not None and not (
        isinstance(state_dtype, torch.dtype) and state_dtype.is_floating_point
    ):
        raise TypeError(f"state_dtype must be None or a floating torch.dtype, got {state_dtype!r}")


def _check_switch(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{name} must be None or a bool, got {value!r}")


def check_group_options(group: dict) -> RAdamConfig:
    """Validate everything in a group; returns its config.  Raises ValueError/TypeError."""
    config = group_config(group)
    resolve_op_order(config, group["op_order"])
    _check_state_dtype(group["state_dtype"])
    for name in ("foreach", "fused"):
        _check_switch(name, group[name])
    for name in ("capturable", "differentiable"):
        if not isinstance(group[name], bool):
            raise TypeError(f"{name} must be a bool, got {group[name]!r}")
    if group["fused"] and group["differentiable"]:
        raise RuntimeError("`fused` does not support `differentiable`")
    if group["fused"] and group["foreach"]:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if group["fused"] and not _fused.AVAILABLE:
        raise RuntimeError(f"fused=True needs the fused CPU kernel: {_fused.UNAVAILABLE_REASON}")
    if group["fused"] and group["capturable"]:
        raise RuntimeError("`fused` and `capturable` cannot be `True` together.")
    return config
