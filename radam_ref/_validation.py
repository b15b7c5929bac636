"""Input checks for the functional step: structure, namespace, device, dtype, shape.

Every check runs before any arithmetic, so a bad call raises without computing
(and, for the in-place backends that reuse these checks, without writing)
anything.  Messages name the argument, the leaf and the offending value.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import array_api_compat

from ._tree import describe_mismatch, flatten, leaf_paths

__all__ = ["NonFiniteGradientError", "check_leaves", "check_count", "check_structures"]


class NonFiniteGradientError(ValueError):
    """Raised by a step with ``nonfinite="raise"`` when a gradient holds NaN or inf."""


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None and dtype is not None:
        return f"{type(x).__module__}.{type(x).__qualname__}(shape={tuple(shape)}, dtype={dtype})"
    return repr(x)


def check_structures(named_trees: Sequence[tuple[str, Any]]):
    """Flatten each tree; all must share the first one's structure.

    Returns ``(treedef, [leaves of each tree])``.
    """
    flat = []
    for name, tree in named_trees:
        try:
            flat.append((name, *flatten(tree)))
        except ValueError as exc:  # too deep, or a cycle
            raise ValueError(f"{name}: {exc}") from None
    first_name, _, first_def = flat[0]
    first_tree = named_trees[0][1]
    for (name, _, treedef), (_, tree) in zip(flat[1:], named_trees[1:]):
        if treedef != first_def:
            where = describe_mismatch(first_name, first_tree, name, tree)
            raise ValueError(f"{name} does not match {first_name}: {where}")
    return first_def, [leaves for _, leaves, _ in flat]


# What the checks learn about types and dtypes, kept: the answers depend only on
# the type (or the namespace and dtype), and a step checks every leaf every call.
_ARRAY_TYPES: set = set()
_NAMESPACES: dict = {}
_REAL_FLOATING: dict = {}


def _is_array(x: Any) -> bool:
    if type(x) in _ARRAY_TYPES:
        return True
    if array_api_compat.is_array_api_obj(x):
        _ARRAY_TYPES.add(type(x))
        return True
    return False


def _namespace(everything: list):
    key = frozenset(type(x) for x in everything)
    xp = _NAMESPACES.get(key)
    if xp is None:
        xp = _NAMESPACES[key] = array_api_compat.array_namespace(*everything)
    return xp


def _real_floating(xp, dtype) -> bool:
    key = (xp, dtype)
    found = _REAL_FLOATING.get(key)
    if found is None:
        found = _REAL_FLOATING[key] = bool(xp.isdtype(dtype, "real floating"))
    return found


def check_leaves(treedef, named_leaves: Sequence[tuple[str, list]]):
    """Check every leaf is a real floating array of one namespace and device, and
    that corresponding leaves agree in shape and dtype with the first tree's.

    Returns the array namespace.
    """
    first_name, first_leaves = named_leaves[0]
    cached_paths: dict = {}

    def paths(name):  # leaf paths, for messages only
        if name not in cached_paths:
            cached_paths[name] = leaf_paths(treedef, name)
        return cached_paths[name]

    if not first_leaves:
        raise ValueError(f"{first_name} holds no arrays")
    for name, leaves in named_leaves:
        for index, x in enumerate(leaves):
            if not _is_array(x):
                raise TypeError(f"{paths(name)[index]} must be an array, got {_describe(x)}")
    everything = [x for _, leaves in named_leaves for x in leaves]
    try:
        xp = _namespace(everything)
    except TypeError as exc:
        kinds = sorted({f"{type(x).__module__}.{type(x).__qualname__}" for x in everything})
        raise TypeError(f"arrays from more than one namespace: {kinds} ({exc})") from None
    reference_device = array_api_compat.device(first_leaves[0])
    for name, leaves in named_leaves:
        for index, x in enumerate(leaves):
            ref = first_leaves[index]
            if not _real_floating(xp, x.dtype):
                raise TypeError(
                    f"{paths(name)[index]} must have a real floating dtype, got {_describe(x)}"
                    + (" (view complex values as real pairs)" if xp.isdtype(x.dtype, "complex floating") else "")
                )
            if tuple(x.shape) != tuple(ref.shape):
                raise ValueError(
                    f"{paths(name)[index]} has shape {tuple(x.shape)} but {paths(first_name)[index]} "
                    f"has shape {tuple(ref.shape)}"
                )
            if x.dtype != ref.dtype:
                raise TypeError(
                    f"{paths(name)[index]} has dtype {x.dtype} but {paths(first_name)[index]} has dtype {ref.dtype}"
                )
            dev = array_api_compat.device(x)
            # A traced array (e.g. under jax.vjp) reports no device: nothing to compare.
            if dev != reference_device and dev is not None and reference_device is not None:
                raise ValueError(
                    f"{paths(name)[index]} is on device {dev!r} but {paths(first_name)[0]} is on "
                    f"{reference_device!r}"
                )
    return xp


def check_count(count: Any, xp=None) -> None:
    """The state's step counter: a non-negative Python/NumPy integer, or a 0-d
    integer array (e.g. traced under jit)."""
    if isinstance(count, bool):
        raise TypeError(f"state.count must be a non-negative integer, got {count!r}")
    if isinstance(count, numbers.Integral):
        if count < 0:
            raise ValueError(f"state.count must be a non-negative integer, got {count!r}")
        return
    if array_api_compat.is_array_api_obj(count):
        cxp = array_api_compat.array_namespace(count)
        if tuple(count.shape) != () or not cxp.isdtype(count.dtype, "integral"):
            raise TypeError(
                f"state.count must be a 0-d integer array, got {_describe(count)}"
            )
        return
    raise TypeError(f"state.count must be a non-negative integer, got {count!r}")
