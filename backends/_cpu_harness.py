"""Build and drive the host harness of the CUDA element update.

``_cpu_harness.cpp`` includes ``radam_element.cuh`` — the exact text the CUDA
kernels run — and exposes it over flat arrays.  :func:`build` compiles it with
the system C++ compiler (``$CXX``, ``c++``, ``g++``, ``clang++``, or ``gcc``/``cc``
in C++ mode) into a shared library; :class:`ElementHarness` calls it through
ctypes.  The test suite compares the harness with :func:`radam_ref.step`.

The build disables contraction into FMA (``-ffp-contract=off``), as the kernels
do with ``--fmad=false``; on x86-64 float and double arithmetic is IEEE single
and double (SSE2), so each operation rounds like the device's ``.rn`` ones.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pathlib
import shutil
import subprocess

import numpy as np

from ._element import ElementFlags, ElementScalars

__all__ = ["ElementHarness", "build", "find_compiler", "HARNESS_FLAGS"]

_HERE = pathlib.Path(__file__).resolve().parent
_SOURCES = ("_cpu_harness.cpp", "radam_element.cuh")

#: Compiler flags of the harness (the language is forced to C++ with -x c++).
HARNESS_FLAGS = ("-x", "c++", "-std=c++14", "-O2", "-ffp-contract=off", "-fno-fast-math",
                 "-fPIC", "-shared")


def find_compiler() -> str | None:
    """The first C++-capable compiler driver found, or None."""
    candidates = [os.environ.get("CXX"), "c++", "g++", "clang++", "gcc", "cc"]
    for name in candidates:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _source_digest() -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_HERE / name).read_bytes())
    return digest.hexdigest()[:16]


def build(out_dir: str | os.PathLike, compiler: str | None = None) -> "ElementHarness":
    """Compile the harness into ``out_dir`` (reused if already built) and load it.

    Raises:
        RuntimeError: no compiler found, or the compilation failed (with its output).
    """
    compiler = compiler or find_compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++/clang++)")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    library = out_dir / f"radam_harness_{_source_digest()}.so"
    if not library.exists():
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        command = [compiler, *HARNESS_FLAGS, "-I", str(_HERE),
                   str(_HERE / "_cpu_harness.cpp"), "-o", str(partial)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"harness build failed ({' '.join(command)}):\n{result.stdout}{result.stderr}"
            )
        os.replace(partial, library)
    return ElementHarness(library)


def _pointer(array: np.ndarray, dtype) -> ctypes.c_void_p:
    if array.dtype != dtype or not array.flags.c_contiguous:
        raise TypeError(f"harness arrays must be C-contiguous {np.dtype(dtype)}, got "
                        f"{array.dtype} (contiguous={array.flags.c_contiguous})")
    return ctypes.c_void_p(array.ctypes.data)


class ElementHarness:
    """The compiled harness: ``apply`` runs ``radam_element`` over arrays in place."""

    def __init__(self, library: str | os.PathLike):
        self.so_path = pathlib.Path(library)
        self._lib = ctypes.CDLL(str(self.so_path))
        if self._lib.radam_harness_n_scalars() != len(ElementScalars._fields):
            raise RuntimeError("harness and ElementScalars disagree on the scalar count")
        if self._lib.radam_harness_n_flags() != len(ElementFlags._fields):
            raise RuntimeError("harness and ElementFlags disagree on the flag count")

    def apply(self, flags: ElementFlags, scalars: ElementScalars,
              p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray) -> None:
        """One element update of every element, in place on ``p``, ``m``, ``v``
        (float32 or float64, C-contiguous, equal shapes)."""
        dtype = p.dtype
        if dtype == np.float32:
            entry = self._lib.radam_harness_apply_f32
        elif dtype == np.float64:
            entry = self._lib.radam_harness_apply_f64
        else:
            raise TypeError(f"harness compute dtype must be float32 or float64, got {dtype}")
        if not (p.shape == g.shape == m.shape == v.shape):
            raise ValueError(f"shapes differ: {p.shape}, {g.shape}, {m.shape}, {v.shape}")
        c_flags = (ctypes.c_int * 7)(*flags.as_ints())
        c_scalars = (ctypes.c_double * 13)(*(float(x) for x in scalars))
        entry(ctypes.c_longlong(p.size), _pointer(p, dtype), _pointer(g, dtype),
              _pointer(m, dtype), _pointer(v, dtype), c_flags, c_scalars)

    def bf16_bits_rn(self, x: np.ndarray) -> np.ndarray:
        """``radam_bf16_bits_rn`` of every float32 in ``x``: bfloat16 bit patterns."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty(x.shape, dtype=np.uint16)
        self._lib.radam_harness_bf16_bits_rn(
            ctypes.c_longlong(x.size), _pointer(x, np.float32), _pointer(out, np.uint16))
        return out
