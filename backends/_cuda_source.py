"""CUDA source of the fused RAdam kernels, generated from one template.

The source text is ``radam_element.cuh`` (the per-element update) followed by
``radam_multi_tensor.cuh`` (the multi-tensor loop, a C++ template) and one
``extern "C"`` wrapper per requested (storage dtype, variant), named after it:
``radam_<storage>_<variant>``, e.g. ``radam_bf16_momentum_decay``.  The wrapper
fixes the variant's flags as template arguments and rebuilds ``radam_scalars``
from thirteen scalar kernel arguments (in :class:`ElementScalars` order).

Nothing here needs CuPy or a GPU: the CuPy backend compiles this text with NVRTC,
and the test suite compiles it with ``nvcc`` when one is on the PATH.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Iterable

from ._element import ElementFlags, ElementScalars

__all__ = [
    "STORAGE",
    "COMPILE_OPTIONS",
    "BLOCK_SIZE",
    "kernel_name",
    "kernel_source",
    "storage_key",
]

_HERE = pathlib.Path(__file__).resolve().parent

#: storage dtype name -> (name tag, storage struct, compute type)
STORAGE = {
    "float16": ("f16", "radam_storage_f16", "float"),
    "bfloat16": ("bf16", "radam_storage_bf16", "float"),
    "float32": ("f32", "radam_storage_f32", "float"),
    "float64": ("f64", "radam_storage_f64", "double"),
}

#: NVRTC / nvcc options: no FMA contraction, IEEE division and square root, no
#: flush-to-zero — the element update must round like radam_ref.step.
COMPILE_OPTIONS = ("--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false",
                   "-std=c++14")

#: Threads per block of every kernel (also its __launch_bounds__).
BLOCK_SIZE = 256


def storage_key(dtype) -> str:
    """The STORAGE key of a NumPy/CuPy dtype (by name), or a TypeError naming it."""
    name = getattr(dtype, "name", str(dtype))
    if name not in STORAGE:
        raise TypeError(
            f"unsupported dtype {name!r} for the CUDA kernels (supported: {sorted(STORAGE)})"
        )
    return name


def kernel_name(storage: str, flags: ElementFlags) -> str:
    """``radam_<tag>_<variant>``, the name of the kernel for ``storage`` and ``flags``."""
    return f"radam_{STORAGE[storage][0]}_{flags.variant}"


@functools.lru_cache(maxsize=None)
def _template_text() -> str:
    element = (_HERE / "radam_element.cuh").read_text()
    multi = (_HERE / "radam_multi_tensor.cuh").read_text()
    multi = multi.replace('#include "radam_element.cuh"', "// (radam_element.cuh inlined above)")
    return element + "\n" + multi


def _wrapper(storage: str, flags: ElementFlags) -> str:
    _, struct, compute = STORAGE[storage]
    scalar_names = ElementScalars._fields
    params = ",\n    ".join(f"{compute} {name}" for name in scalar_names)
    template_args = ", ".join([struct, *(str(x) for x in flags.as_ints())])
    return (
        f'extern "C" __global__ void __launch_bounds__({BLOCK_SIZE})\n'
        f"{kernel_name(storage, flags)}(\n"
        "    const long long *__restrict__ table, long long n_tensors, long long n_chunks,\n"
        f"    long long chunk_size,\n    {params}) {{\n"
        f"    const radam_scalars<{compute}> s = {{{', '.join(scalar_names)}}};\n"
        f"    radam_multi_tensor<{template_args}>(table, n_tensors, n_chunks, chunk_size, s);\n"
        "}\n"
    )


def kernel_source(kernels: Iterable[tuple[str, ElementFlags]]) -> str:
    """Complete CUDA source defining one kernel per ``(storage, flags)`` pair."""
    wrappers = [_wrapper(storage, flags) for storage, flags in kernels]
    if not wrappers:
        raise ValueError("kernel_source needs at least one (storage, flags) pair")
    return _template_text() + "\n// ---- kernels ----\n" + "\n".join(wrappers)
