"""The CUDA kernels' arithmetic, verified without a GPU.

``radam_element.cuh`` — the text every CUDA kernel runs per element — is built
by the host C++ compiler into a small harness and compared with
:func:`radam_ref.step` on every kernel variant and on drawn configs; the
multi-tensor indexing is emulated on the host from the same table the kernels
read; and when ``nvcc`` is on the PATH the generated kernels are compiled for
sm_90 and their PTX inspected (IEEE division and square root, no FMA).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import radam_ref
from radam_ref import RAdamConfig, RAdamState
from radam_ref.backends import _cpu_harness
from radam_ref.backends._cuda_source import COMPILE_OPTIONS, STORAGE, kernel_name, kernel_source
from radam_ref.backends._element import (
    UPDATE_ADAPTIVE,
    UPDATE_MOMENTS_ONLY,
    ElementFlags,
    all_variants,
    DECAY_MULTIPLY,
    element_constants,
)
from radam_ref.backends.cupy import build_table

from _backend_strategies import assert_ulp, configs, grads_for

VARIANTS = all_variants()


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if _cpu_harness.find_compiler() is None:
        pytest.skip("no C++ compiler (c++, g++, clang++ or gcc) on the PATH")
    return _cpu_harness.build(tmp_path_factory.mktemp("harness"))


def _config_for(flags: ElementFlags) -> tuple[RAdamConfig, int]:
    """A config and step t whose element flags are ``flags``."""
    if flags.l2:
        mode, wd = "l2", 0.1
    elif flags.decay:
        mode, wd = "decoupled", 0.1
    else:
        mode, wd = "none", 0.0
    config = RAdamConfig(
        betas=(0.9, 0.999), threshold=4.0, weight_decay=wd, weight_decay_mode=mode,
        eps_placement="after_bias_correction" if flags.eps_after else "before_bias_correction",
        eps_root=1e-3 if flags.eps_root else 0.0, nesterov=flags.nesterov,
        maximize=flags.maximize,
        decay_form="multiply" if flags.decay == DECAY_MULTIPLY else "subtract",
        before_rectification="none" if flags.update == UPDATE_MOMENTS_ONLY else "sgd_momentum",
    )
    t = 20 if flags.update == UPDATE_ADAPTIVE else 2
    assert element_constants(config, t)[0] == flags
    return config, t


def _arrays(n, dtype, seed):
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n)
    g = rng.standard_normal(n) * np.exp(rng.uniform(-20, 5, n))
    g[::17] = 0.0
    m = rng.standard_normal(n) * 0.1
    v = rng.standard_normal(n) ** 2 * 0.01
    v[::13] = 0.0
    return [np.asarray(x, dtype=dtype) for x in (p, g, m, v)]


def _harness_vs_spec(harness, config, t, p, g, m, v, max_ulp, what):
    flags, scalars = element_constants(config, t)
    with np.errstate(all="ignore"):  # IEEE propagation is part of what is compared
        expected_p, expected = radam_ref.step([p], [g], RAdamState(t - 1, [m], [v]), config)
    hp, hm, hv = p.copy(), m.copy(), v.copy()
    harness.apply(flags, scalars, hp, g, hm, hv)
    assert_ulp(hp, expected_p[0], max_ulp, f"{what}: theta")
    assert_ulp(hm, expected.m[0], max_ulp, f"{what}: m")
    assert_ulp(hv, expected.v[0], max_ulp, f"{what}: v")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("flags", VARIANTS, ids=[f.variant for f in VARIANTS])
def test_every_variant_matches_spec(harness, flags, dtype):
    """Each of the 88 kernel variants, on 257 elements (zeros, tiny and large
    gradients), within 4 ulp of radam_ref.step."""
    config, t = _config_for(flags)
    _harness_vs_spec(harness, config, t, *_arrays(257, dtype, seed=len(flags.variant)), 4,
                     flags.variant)


@given(config=configs(), t=st.integers(1, 40), dtype=st.sampled_from([np.float32, np.float64]),
       n=st.integers(0, 40), data=st.data())
def test_drawn_configs_match_spec(harness, config, t, dtype, n, data):
    """Drawn profiles and hyperparameters (β₂ over [0, 0.99999], thresholds hit on
    both sides as t varies) and gradient scales."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    p = np.asarray(rng.standard_normal(n), dtype)
    m = np.asarray(rng.standard_normal(n) * 0.1, dtype)
    v = np.asarray(rng.standard_normal(n) ** 2, dtype)
    (g,) = data.draw(grads_for([(n,)], dtype))
    _harness_vs_spec(harness, config, t, p, g, m, v, 4, f"t={t}")


def test_multi_tensor_table_covers_every_element_once(harness):
    """Emulate the kernels' loop over the chunk table (blocks → chunks → elements)
    with the harness: the result must equal the spec, so no element is skipped or
    updated twice — including empty tensors and sizes that are not multiples of
    the chunk."""
    config = RAdamConfig.from_profile("torch")
    t = 9
    flags, scalars = element_constants(config, t)
    sizes = [0, 1, 7, 8, 9, 50, 0, 23]
    rng = np.random.default_rng(5)
    tensors = [[rng.standard_normal(n).astype(np.float32) for _ in range(4)] for n in sizes]
    for _, _, m, v in tensors:
        v[...] = np.abs(v)
    expected_p, expected = radam_ref.step(
        [x[0] for x in tensors], [x[1] for x in tensors],
        RAdamState(t - 1, [x[2] for x in tensors], [x[3] for x in tensors]), config)
    chunk = 8
    table = build_table([(i, i, i, i, n) for i, n in enumerate(sizes)], chunk)
    n_tensors = len(sizes)
    chunks = table[5 * n_tensors:].reshape(-1, 2)
    assert (table[: 5 * n_tensors].reshape(-1, 5)[:, 4] == sizes).all()
    for tensor, start in chunks:  # what block b does for chunk c
        p, g, m, v = tensors[tensor]
        end = min(start + chunk, sizes[tensor])
        views = [np.ascontiguousarray(x[start:end]) for x in (p, g, m, v)]
        harness.apply(flags, scalars, *views)
        p[start:end], m[start:end], v[start:end] = views[0], views[2], views[3]
    for i, (p, _, m, v) in enumerate(tensors):
        assert_ulp(p, expected_p[i], 4, f"theta[{i}]")
        assert_ulp(m, expected.m[i], 4, f"m[{i}]")
        assert_ulp(v, expected.v[i], 4, f"v[{i}]")


def test_bfloat16_fallback_rounds_to_nearest_even(harness):
    """The bfloat16 store used before sm_80 agrees with ml_dtypes' conversion
    (round to nearest even) on every rounding boundary of 2¹⁶ bfloat16 values."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bits = np.arange(2**16, dtype=np.uint32) << 16
    values = bits.view(np.float32)
    finite = np.sort(values[np.isfinite(values)])
    low, high = finite[:-1].astype(np.float64), finite[1:].astype(np.float64)
    midpoints = ((low + high) / 2).astype(np.float32)
    probe = np.concatenate([
        midpoints, np.nextafter(midpoints, np.float32(np.inf)),
        np.nextafter(midpoints, np.float32(-np.inf)), values,
        np.random.default_rng(1).standard_normal(20000).astype(np.float32),
    ])
    got = harness.bf16_bits_rn(probe)
    with np.errstate(invalid="ignore"):  # NaN inputs are part of the probe
        expected = probe.astype(ml_dtypes.bfloat16).view(np.uint16)
    nan = np.isnan(probe)
    assert (got[~nan] == expected[~nan]).all()
    assert ((got[nan] & 0x7F80) == 0x7F80).all() and ((got[nan] & 0x7F) != 0).all()


def test_generated_source_has_one_named_kernel_per_variant():
    kernels = [(storage, flags) for storage in STORAGE for flags in VARIANTS[:5]]
    source = kernel_source(kernels)
    names = re.findall(r'extern "C" __global__ void __launch_bounds__\(\d+\)\n(\w+)\(', source)
    assert names == [kernel_name(storage, flags) for storage, flags in kernels]
    assert len(set(names)) == len(names)
    assert kernel_name("bfloat16", VARIANTS[0]) == f"radam_bf16_{VARIANTS[0].variant}"
    assert '#include "radam_element.cuh"' not in source  # self-contained for NVRTC
    with pytest.raises(ValueError):
        kernel_source([])


# --------------------------------------------------------------------------- nvcc

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None,
                                reason="nvcc is not on the PATH (CUDA toolkit not installed)")


def _nvcc(tmp_path, source, *options, output="ptx", arch="sm_90"):
    path = tmp_path / "kernels.cu"
    path.write_text(source)
    out = tmp_path / f"kernels.{output}"
    mode = "--ptx" if output == "ptx" else "--cubin"
    command = ["nvcc", mode, f"-arch={arch}", *options, str(path), "-o", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    return out


@needs_nvcc
def test_nvcc_compiles_every_variant_with_ieee_arithmetic(tmp_path):
    """All 88 variants for float32 and float64 storage, and the first variants of
    each update kind for float16 and bfloat16, compile for sm_90; every entry is
    present and the PTX holds only round-to-nearest division, reciprocal and
    square root and no fused multiply-add."""
    kernels = [(s, f) for s in ("float32", "float64") for f in VARIANTS]
    kernels += [(s, f) for s in ("float16", "bfloat16") for f in VARIANTS[::6]]
    ptx = _nvcc(tmp_path, kernel_source(kernels), *COMPILE_OPTIONS).read_text()
    entries = set(re.findall(r"\.entry\s+(\w+)\(", ptx))
    assert entries == {kernel_name(s, f) for s, f in kernels}
    assert not re.search(r"\bfma\.", ptx)
    for op in ("div", "sqrt", "rcp"):
        forms = set(re.findall(rf"\b{op}\.([a-z]+)\.f(?:32|64)", ptx))
        assert forms <= {"rn"}, (op, forms)
    assert "div.rn.f32" in ptx and "sqrt.rn.f64" in ptx
    assert "cvt.rn.f16.f32" in ptx and "cvt.rn.bf16.f32" in ptx


@needs_nvcc
def test_nvcc_builds_cubins_and_the_pre_sm80_bfloat16_path(tmp_path):
    """ptxas accepts the kernels (a cubin for sm_90), and for sm_75 the bfloat16
    store falls back to radam_bf16_bits_rn instead of cvt.rn.bf16.f32."""
    adaptive = next(f for f in VARIANTS if f.update == UPDATE_ADAPTIVE and f.nesterov)
    source = kernel_source([(s, adaptive) for s in STORAGE])
    assert _nvcc(tmp_path, source, *COMPILE_OPTIONS, output="cubin").stat().st_size > 0
    ptx75 = _nvcc(tmp_path, kernel_source([("bfloat16", adaptive)]), *COMPILE_OPTIONS,
                  arch="sm_75").read_text()
    assert "cvt.rn.bf16.f32" not in ptx75 and ".entry" in ptx75


@needs_nvcc
def test_without_fmad_false_nvcc_would_contract(tmp_path):
    """The reason for --fmad=false: by default nvcc fuses b·m + c·g into an FMA,
    which rounds once instead of twice and departs from the spec."""
    flags = next(f for f in VARIANTS if f.update == UPDATE_ADAPTIVE)
    ptx = _nvcc(tmp_path, kernel_source([("float32", flags)]), "-std=c++14").read_text()
    assert re.search(r"\bfma\.rn\.f32", ptx)
