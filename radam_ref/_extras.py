"""Optional dependencies: which extra provides what, and the error when one is missing.

``pip install radam-ref`` installs the spec alone (its only dependency is
``array-api-compat``).  Everything else comes with an extra of ``pyproject.toml``;
:data:`EXTRAS` lists, for each, the import names it provides.  A module or command
that needs an extra calls :func:`require` first, so a missing one is reported as
one line naming the extra to install, e.g.::

    radam_ref.backends.numpy needs the 'numpy' extra (numba is not installed):
    pip install 'radam-ref[numpy]'

instead of a bare ``ModuleNotFoundError`` from deep inside an import.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtraError", "missing_modules", "require"]

#: extra -> the top-level modules it installs (tests/test_extras.py checks this
#: table against the ``[project.optional-dependencies]`` of pyproject.toml).
EXTRAS = {
    "numpy": ("numpy", "numba"),
    "torch": ("torch", "numpy", "numba"),
    "jax": ("jax", "optax"),
    "cupy": ("cupy",),
    "keras": ("keras",),
    "cli": ("numpy", "hypothesis", "rich"),
    "bench": ("numpy", "numba", "rich"),
    "paper": ("numpy", "matplotlib", "sklearn", "rich", "torch"),
}


class MissingExtraError(ModuleNotFoundError):
    """A module of an optional extra is not installed; the message names the extra."""


def missing_modules(modules) -> list[str]:
    """The names in ``modules`` that cannot be imported (looked up, not imported)."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def require(feature: str, extra: str, modules=None) -> None:
    """Raise :class:`MissingExtraError` unless every module ``feature`` needs is
    installed (default: every module of ``extra``)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (known: {sorted(EXTRAS)})")
    missing = missing_modules(EXTRAS[extra] if modules is None else modules)
    if missing:
        raise MissingExtraError(
            f"{feature} needs the {extra!r} extra ({', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed): pip install 'radam-ref[{extra}]'",
            name=missing[0],
        )
