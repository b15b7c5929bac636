"""Adapters: the protocol (:mod:`.base`) and its implementations for torch
optimizers, optax-style factories and spec-signature step functions."""

from .base import FEATURES, NotSupported, Session, Target, TargetError
from .registry import ALL_TARGETS, BUILTIN_TARGETS, TargetUnavailable, resolve_target, target_label

__all__ = [
    "ALL_TARGETS",
    "BUILTIN_TARGETS",
    "FEATURES",
    "NotSupported",
    "Session",
    "Target",
    "TargetError",
    "TargetUnavailable",
    "resolve_target",
    "target_label",
]
