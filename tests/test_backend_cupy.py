"""The CuPy backend: host-side logic everywhere, the GPU step where a GPU exists.

Without CuPy and an NVIDIA GPU the GPU tests skip (with the reason); the kernel
arithmetic is still verified on the CPU by tests/test_cuda_element.py, and the
host-side pieces (import without CuPy, kernel cache, launch table) here.
On a GPU machine, ``make gpu-check`` runs this file and the GPU benchmark.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import radam_ref
from radam_ref import NonFiniteGradientError, RAdamConfig, RAdamState
from radam_ref.backends import cupy as backend
from radam_ref.backends._cuda_source import COMPILE_OPTIONS
from radam_ref.backends._element import all_variants, element_constants

from _backend_strategies import assert_ulp, configs, grads_for

GPU = backend.available()
gpu = pytest.mark.skipif(not GPU, reason="needs CuPy and an NVIDIA GPU (none found)")


def test_module_imports_without_importing_cupy():
    code = ("import sys, radam_ref.backends.cupy as b; "
            "assert 'cupy' not in sys.modules, 'cupy imported eagerly'; print(b.CHUNK_ELEMENTS)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == backend.CHUNK_ELEMENTS


@pytest.mark.skipif(GPU, reason="CuPy and a GPU are present")
def test_without_cupy_calls_fail_with_a_clear_error():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs CuPy"):
            backend.init([np.ones(3)])
        with pytest.raises(ImportError, match="needs CuPy"):
            backend.step_([np.ones(3)], [np.ones(3)], None)
    assert backend.available() is False


def test_kernel_cache_compiles_once_per_dtype_variant_and_device():
    compiled = []

    def fake_compile(source, name, options):
        compiled.append((name, source, options))
        return name

    cache = backend.KernelCache(compile=fake_compile)
    adaptive, momentum = element_constants(RAdamConfig(), 20)[0], element_constants(
        RAdamConfig(), 1)[0]
    first = cache.get("float32", adaptive, 0)
    again = cache.get("float32", adaptive, 0)
    assert first is again
    cache.get("float32", momentum, 0)
    cache.get("bfloat16", adaptive, 0)
    cache.get("float32", adaptive, 1)
    assert sorted(cache.keys()) == sorted([
        ("float32", adaptive.variant, 0), ("float32", momentum.variant, 0),
        ("bfloat16", adaptive.variant, 0), ("float32", adaptive.variant, 1)])
    names = [name for name, _, _ in compiled]
    assert names == ["radam_f32_adaptive", "radam_f32_momentum", "radam_bf16_adaptive",
                     "radam_f32_adaptive"]
    for name, source, options in compiled:
        assert source.count('extern "C" __global__ void') == 1 and f"\n{name}(" in source
        assert options == COMPILE_OPTIONS and "--fmad=false" in options


def test_paper_profile_variants_are_named_after_their_flags():
    config = RAdamConfig(weight_decay=0.1)  # paper: decoupled weight decay
    assert element_constants(config, 1)[0].variant == "momentum_decay"
    assert element_constants(config, 5)[0].variant == "adaptive_decay"
    names = {flags.variant for flags in all_variants()}
    assert len(names) == 88 and "adaptive_eps_after_eps_root_l2_nesterov_maximize" in names


@given(sizes=st.lists(st.integers(0, 100), max_size=12), chunk=st.integers(1, 33))
def test_launch_table_covers_every_element_exactly_once(sizes, chunk):
    tensors = [(10 * i + 1, 10 * i + 2, 10 * i + 3, 10 * i + 4, n) for i, n in enumerate(sizes)]
    table = backend.build_table(tensors, chunk)
    head = table[: 5 * len(sizes)].reshape(-1, 5)
    assert head.tolist() == [list(t) for t in tensors]
    covered = [np.zeros(n, dtype=int) for n in sizes]
    for tensor, start in table[5 * len(sizes):].reshape(-1, 2):
        end = min(start + chunk, sizes[tensor])
        assert start < end
        covered[tensor][start:end] += 1
    assert all((c == 1).all() for c in covered)


def test_bench_cuda_without_gpu_says_why(capsys):
    if GPU:
        pytest.skip("a GPU is present: make gpu-check runs the GPU benchmark")
    from radam_ref.cli import main

    assert main(["bench", "--device", "cuda", "--quick", "--no-table"]) == 2
    assert "needs CuPy and an NVIDIA GPU" in capsys.readouterr().out


# --------------------------------------------------------------------------- GPU


def _cupy():
    import cupy

    return cupy


def _spec_on_host(params, grads, state, config, storage):
    """The spec on float32/float64 host copies (the storage/compute policy)."""
    compute = backend.compute_dtype_name(storage)
    p = [x.get().astype(compute) for x in params]
    g = [x.get().astype(compute) for x in grads]
    spec = RAdamState(state.count, [x.get() for x in state.m], [x.get() for x in state.v])
    with np.errstate(all="ignore"):
        return radam_ref.step(p, g, spec, config)


@gpu
@settings(max_examples=15)
@given(config=configs(), storage=st.sampled_from(["float32", "float64"]),
       shapes=st.lists(st.lists(st.integers(0, 9), max_size=3).map(tuple), min_size=1,
                       max_size=5),
       count=st.integers(0, 12), n_steps=st.integers(1, 4), data=st.data())
def test_gpu_steps_match_spec(config, storage, shapes, count, n_steps, data):
    cupy = _cupy()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    params = [cupy.asarray(np.asarray(rng.standard_normal(s), storage)) for s in shapes]
    start = RAdamState(count, [np.asarray(rng.standard_normal(s) * 0.1, storage) for s in shapes],
                       [np.asarray(rng.standard_normal(s) ** 2, storage) for s in shapes])
    state = backend.from_spec_state(start, params)
    for _ in range(n_steps):
        grads = [cupy.asarray(g) for g in data.draw(grads_for(shapes, storage))]
        expected_p, expected = _spec_on_host(params, grads, state, config, storage)
        backend.step_(params, grads, state, config)
        for i in range(len(params)):
            assert_ulp(params[i].get(), expected_p[i], 4, f"params[{i}]")
            assert_ulp(state.m[i].get(), expected.m[i], 4, f"m[{i}]")
            assert_ulp(state.v[i].get(), expected.v[i], 4, f"v[{i}]")


@gpu
@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_gpu_half_storage_computes_in_float32(storage):
    cupy = _cupy()
    if storage == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dtype = ml_dtypes.bfloat16
        try:
            cupy.zeros(1, dtype=dtype)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"this CuPy has no bfloat16 arrays ({exc})")
    else:
        dtype = np.float16
    rng = np.random.default_rng(0)
    host = [rng.standard_normal(s).astype(dtype) for s in [(33,), (4, 5), (0,)]]
    params = [cupy.asarray(x) for x in host]
    config = RAdamConfig.from_profile("torch")
    state = backend.init(params)
    assert all(m.dtype == np.float32 for m in state.m)
    for _ in range(7):
        grads = [cupy.asarray(rng.standard_normal(x.shape).astype(dtype)) for x in host]
        spec = RAdamState(state.count, [m.get() for m in state.m], [v.get() for v in state.v])
        expected_p, expected = radam_ref.step([p.get().astype(np.float32) for p in params],
                                              [g.get().astype(np.float32) for g in grads],
                                              spec, config)
        backend.step_(params, grads, state, config)
        for i in range(len(params)):
            got = params[i].get()
            want = expected_p[i].astype(dtype)
            assert (got.view(np.uint16) == want.view(np.uint16)).all()
            assert_ulp(state.m[i].get(), expected.m[i], 4, f"m[{i}]")


@gpu
def test_gpu_one_launch_per_dtype_group(monkeypatch):
    cupy = _cupy()
    launches = []
    real = backend._KERNELS

    class Counting:
        def get(self, storage, flags, device_id):
            kernel = real.get(storage, flags, device_id)

            def launch(*args):
                launches.append(storage)
                return kernel(*args)

            return launch

    monkeypatch.setattr(backend, "_KERNELS", Counting())
    params = [cupy.ones(n, dtype=np.float32) for n in (10, 1000, 0, 70000)]
    params += [cupy.ones(5, dtype=np.float64), cupy.ones(3, dtype=np.float16)]
    grads = [cupy.ones_like(p) for p in params]
    state = backend.init(params)
    backend.step_(params, grads, state, RAdamConfig())
    assert sorted(launches) == ["float16", "float32", "float64"]


@gpu
def test_gpu_resume_is_bit_identical():
    cupy = _cupy()
    rng = np.random.default_rng(4)
    start = [rng.standard_normal(s).astype(np.float32) for s in [(7, 3), (11,)]]
    stream = [[rng.standard_normal(x.shape).astype(np.float32) for x in start] for _ in range(8)]
    config = RAdamConfig.from_profile("optax", nesterov=True)
    a = [cupy.asarray(x) for x in start]
    state_a = backend.init(a)
    for grads in stream:
        backend.step_(a, [cupy.asarray(g) for g in grads], state_a, config)
    b = [cupy.asarray(x) for x in start]
    state_b = backend.init(b)
    for grads in stream[:3]:
        backend.step_(b, [cupy.asarray(g) for g in grads], state_b, config)
    state_b = backend.from_spec_state(backend.to_spec_state(state_b), b)
    for grads in stream[3:]:
        backend.step_(b, [cupy.asarray(g) for g in grads], state_b, config)
    for x, y in zip(a + state_a.m + state_a.v, b + state_b.m + state_b.v):
        assert x.get().tobytes() == y.get().tobytes()


@gpu
def test_gpu_errors_are_clear_and_write_nothing():
    cupy = _cupy()
    params = [cupy.ones((4, 6), dtype=np.float32)]
    state = backend.init(params)
    with pytest.raises(ValueError, match=r"params\[0\] is not C-contiguous"):
        backend.step_([params[0].T], [cupy.ones((6, 4), np.float32)], backend.init([params[0].T]))
    grads = [cupy.ones((4, 6), dtype=np.float32)]
    grads[0][1, 2] = np.nan
    with pytest.raises(NonFiniteGradientError, match=r"grads\[0\]"):
        backend.step_(params, grads, state, RAdamConfig(nonfinite="raise"))
    assert state.count == 0 and bool((params[0] == 1).all()) and bool((state.m[0] == 0).all())
    with pytest.raises(ValueError, match=r"grads\[0\] has shape"):
        backend.step_(params, [cupy.ones(24, np.float32)], state)
