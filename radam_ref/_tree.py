"""Minimal containers of arrays: one array, or nested lists, tuples and dicts of them.

The spec accepts ``params`` as a single array or a (nested) list/tuple/dict of
arrays and returns results of the same structure.  This module flattens such a
container into a list of leaves plus a hashable description of its structure,
and rebuilds it; nothing array-specific happens here.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["flatten", "unflatten", "leaf_paths", "describe_mismatch"]

_LEAF = ("*",)


def flatten(tree: Any) -> tuple[list, tuple]:
    """Return ``(leaves, treedef)``; ``treedef`` is hashable and comparable."""
    leaves: list = []

    def walk(node):
        if isinstance(node, dict):
            keys = tuple(node.keys())
            return ("dict", keys, tuple(walk(node[k]) for k in keys))
        if isinstance(node, tuple) and not hasattr(node, "_fields"):
            return ("tuple", tuple(walk(child) for child in node))
        if isinstance(node, list):
            return ("list", tuple(walk(child) for child in node))
        leaves.append(node)
        return _LEAF

    treedef = walk(tree)
    return leaves, treedef


def unflatten(treedef: tuple, leaves: list) -> Any:
    """Inverse of :func:`flatten`."""
    it = iter(leaves)

    def build(node):
        if node == _LEAF:
            return next(it)
        kind = node[0]
        if kind == "dict":
            return {k: build(child) for k, child in zip(node[1], node[2])}
        children = [build(child) for child in node[1]]
        return tuple(children) if kind == "tuple" else children

    return build(treedef)


def leaf_paths(treedef: tuple, root: str) -> list[str]:
    """Human-readable paths of the leaves, e.g. ``params['w'][0]``, for messages."""
    paths: list[str] = []

    def walk(node, prefix):
        if node == _LEAF:
            paths.append(prefix)
            return
        if node[0] == "dict":
            for k, child in zip(node[1], node[2]):
                walk(child, f"{prefix}[{k!r}]")
        else:
            for i, child in enumerate(node[1]):
                walk(child, f"{prefix}[{i}]")

    walk(treedef, root)
    return paths


def map_leaves(fn: Callable, treedef: tuple, *leaf_lists: list) -> Any:
    """Apply ``fn`` leaf-wise across several flattened trees and rebuild."""
    return unflatten(treedef, [fn(*xs) for xs in zip(*leaf_lists)])


def _kind(node: Any) -> str:
    if isinstance(node, dict):
        return "dict"
    if isinstance(node, tuple) and not hasattr(node, "_fields"):
        return "tuple"
    if isinstance(node, list):
        return "list"
    return "leaf"


def _describe_node(node: Any) -> str:
    """``a list of 2``, ``a dict with keys ['b', 'w']``, ``an array (numpy.ndarray)``."""
    kind = _kind(node)
    if kind == "dict":
        return f"a dict with keys {list(node.keys())!r}"
    if kind in ("list", "tuple"):
        return f"a {kind} of {len(node)}"
    shape = getattr(node, "shape", None)
    name = f"{type(node).__module__}.{type(node).__qualname__}"
    if shape is not None and hasattr(node, "dtype"):
        return f"an array ({name})"
    return f"a {name} ({node!r:.40})"


def describe_mismatch(name_a: str, tree_a: Any, name_b: str, tree_b: Any) -> str | None:
    """Where two containers first differ in structure, naming both sides, e.g.
    ``params[0] is an array (numpy.ndarray), grads[0] is a list of 2``.

    Returns None when the structures agree (as :func:`flatten` sees them).
    """

    def walk(a, b, path):
        ka, kb = _kind(a), _kind(b)
        if ka != kb or (ka in ("list", "tuple") and len(a) != len(b)) or (
                ka == "dict" and tuple(a.keys()) != tuple(b.keys())):
            if ka == kb == "leaf":
                return None
            return (f"{name_a}{path} is {_describe_node(a)}, "
                    f"{name_b}{path} is {_describe_node(b)}")
        if ka == "dict":
            for key in a:
                found = walk(a[key], b[key], f"{path}[{key!r}]")
                if found:
                    return found
        elif ka in ("list", "tuple"):
            for i, (x, y) in enumerate(zip(a, b)):
                found = walk(x, y, f"{path}[{i}]")
                if found:
                    return found
        return None

    return walk(tree_a, tree_b, "")
