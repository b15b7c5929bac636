"""Parameter dtypes the suite speaks of, by name, and how values are made exact in them.

The suite never relies on a framework's dtype objects: a dtype is one of the names
below.  Every input the suite hands to a target is first rounded to the target's
dtype (:func:`round_to`), then carried as a float64 (or complex128) NumPy array
holding exactly that value, so the oracle and the target start from bit-identical
inputs and every difference afterwards is the target's arithmetic.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "REAL_DTYPES",
    "COMPLEX_DTYPES",
    "LOW_PRECISION_DTYPES",
    "DTYPES",
    "machine_epsilon",
    "smallest_normal",
    "real_dtype",
    "is_complex",
    "round_to",
    "real_view",
    "check_dtype",
]

REAL_DTYPES = ("float64", "float32", "float16", "bfloat16")
COMPLEX_DTYPES = ("complex128", "complex64")
LOW_PRECISION_DTYPES = ("float16", "bfloat16")
DTYPES = REAL_DTYPES + COMPLEX_DTYPES

#: Machine epsilon (the gap between 1 and the next float) of each real dtype.
_EPSILON = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
#: Smallest positive normal number of each real dtype.
_TINY = {
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
}


def check_dtype(name: str) -> str:
    """Return ``name`` if it is a dtype name the suite knows, else raise ValueError."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r} (choose one of {DTYPES})")
    return name


def real_dtype(name: str) -> str:
    """The real dtype of a (possibly complex) dtype name: complex64 -> float32."""
    return {"complex128": "float64", "complex64": "float32"}.get(check_dtype(name), name)


def is_complex(name: str) -> bool:
    return check_dtype(name) in COMPLEX_DTYPES


def machine_epsilon(name: str) -> float:
    """Machine epsilon of ``name`` (of its real part for complex dtypes)."""
    return _EPSILON[real_dtype(name)]


def smallest_normal(name: str) -> float:
    return _TINY[real_dtype(name)]


def _round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float64 values to bfloat16 (round to nearest even), via float32 bits."""
    f = np.asarray(x, dtype=np.float64).astype(np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32).astype(np.float64)
    return np.where(np.isnan(f), np.nan, out)


def round_to(values, name: str) -> np.ndarray:
    """Round ``values`` to dtype ``name``; returns float64 (complex128) holding them exactly."""
    name = check_dtype(name)
    x = np.asarray(values)
    if name in COMPLEX_DTYPES:
        part = real_dtype(name)
        return round_to(x.real, part) + 1j * round_to(x.imag, part)
    x = np.asarray(x, dtype=np.float64)
    if name == "float64":
        return x.copy()
    if name == "bfloat16":
        return _round_bfloat16(x)
    return x.astype(np.dtype(name)).astype(np.float64)


def real_view(x: np.ndarray) -> np.ndarray:
    """A complex array as real pairs (shape + (2,)), as ``torch.view_as_real``; a real
    array unchanged.  The spec defines a complex parameter as this real view."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return np.stack([x.real, x.imag], axis=-1).astype(np.float64)
    return x
