"""Minimal containers of arrays: one array, or nested lists, tuples and dicts of them.

The spec accepts ``params`` as a single array or a (nested) list/tuple/dict of
arrays and returns results of the same structure.  This module flattens such a
container into a list of leaves plus a hashable description of its structure,
and rebuilds it; nothing array-specific happens here.

A dict's structure is its set of keys: its leaves are taken in sorted key order
(insertion order when the keys do not sort), as JAX does, so that ``grads``
from ``jax.grad`` (a dict with sorted keys) matches ``params`` written in any
order.  A rebuilt dict keeps the key order of the tree whose structure it was
(the params').  Containers nested deeper than :data:`MAX_DEPTH`, or containing
themselves, are a ValueError.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["flatten", "unflatten", "leaf_paths", "describe_mismatch"]

_LEAF = ("*",)

#: The deepest nesting of containers accepted (far beyond any model's parameters).
MAX_DEPTH = 100


class _DictDef(tuple):
    """A dict node of a treedef: ``("dict", sorted keys, children)``, compared and
    hashed as that tuple; ``order`` (the keys as inserted) only shapes rebuilt dicts."""

    order: tuple


def _dict_def(keys: tuple, children: tuple, order: tuple) -> _DictDef:
    node = _DictDef(("dict", keys, children))
    node.order = order
    return node


def dict_keys(node: dict) -> tuple:
    """The keys of ``node`` in canonical order: sorted, or as inserted if they do not sort."""
    try:
        return tuple(sorted(node))
    except TypeError:
        return tuple(node)


def flatten(tree: Any) -> tuple[list, tuple]:
    """Return ``(leaves, treedef)``; ``treedef`` is hashable and comparable."""
    leaves: list = []
    path: set = set()  # ids of the containers being walked: a container inside itself is a cycle

    def walk(node, depth):
        kind = _kind(node)
        if kind == "leaf":
            leaves.append(node)
            return _LEAF
        if depth >= MAX_DEPTH:
            raise ValueError(f"containers nested deeper than {MAX_DEPTH} levels")
        if id(node) in path:
            raise ValueError(f"a {kind} that contains itself")
        path.add(id(node))
        if kind == "dict":
            keys = dict_keys(node)
            out = _dict_def(keys, tuple(walk(node[k], depth + 1) for k in keys), tuple(node))
        else:
            out = (kind, tuple(walk(child, depth + 1) for child in node))
        path.discard(id(node))
        return out

    treedef = walk(tree, 0)
    return leaves, treedef


def unflatten(treedef: tuple, leaves: list) -> Any:
    """Inverse of :func:`flatten`."""
    it = iter(leaves)

    def build(node):
        if node == _LEAF:
            return next(it)
        kind = node[0]
        if kind == "dict":
            built = {k: build(child) for k, child in zip(node[1], node[2])}
            return {k: built[k] for k in getattr(node, "order", node[1])}
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
                ka == "dict" and dict_keys(a) != dict_keys(b)):
            if ka == kb == "leaf":
                return None
            return (f"{name_a}{path} is {_describe_node(a)}, "
                    f"{name_b}{path} is {_describe_node(b)}")
        if ka == "dict":
            for key in dict_keys(a):
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
