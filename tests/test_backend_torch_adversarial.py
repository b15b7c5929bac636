"""Adversarial tests of the torch backend's CPU paths (fused kernel, foreach, single-tensor).

Parameters, gradients and state that disagree — in shape, dtype, strides, device,
count, memory overlap, or state loaded from another model — are built by
Hypothesis-drawn probes.  Each path must either give the single-tensor path's
result or raise; a crash (e.g. a write past the end of a buffer) must fail the
test, not kill the run, so the probes run in a child process (``sys.executable``),
many per child.  Also here: ``nonfinite="raise"`` anywhere in any group, atomic
``load_state_dict``, fused mixed precision against an independent oracle, and a
10⁵-step float32 accuracy run against the float64 spec.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import radam_ref  # noqa: E402
from radam_ref import NonFiniteGradientError, RAdamConfig  # noqa: E402
from radam_ref.backends import _torch_fused_cpu  # noqa: E402
from radam_ref.backends.torch import RAdam, TensorMismatchError  # noqa: E402

needs_fused = pytest.mark.skipif(not _torch_fused_cpu.AVAILABLE,
                                 reason=_torch_fused_cpu.UNAVAILABLE_REASON or "no numba")

PATHS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {}}

# --------------------------------------------------------------------------- #
# Probes in a child process
# --------------------------------------------------------------------------- #

#: Runs in the child: builds each probe on every path and reports, per path,
#: ["ok", [flattened parameter values]] or ["raised", exception class name].
CHILD = textwrap.dedent(r'''
    import json, sys, warnings
    import torch
    from radam_ref.backends.torch import RAdam
    warnings.simplefilter("ignore")
    PATHS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {}}

    def build(probe, path):
        kind, n_small, n_big, dtype, wd = (probe["kind"], probe["small"], probe["big"],
                                           getattr(torch, probe["dtype"]), probe["wd"])
        torch.manual_seed(probe["seed"])
        model = torch.nn.Linear(4, n_big).to(dtype)
        params = list(model.parameters())
        opt = RAdam(params, lr=0.01, weight_decay=wd, **PATHS[path])
        x = torch.randn(3, 4, dtype=dtype)

        def backward():
            opt.zero_grad()
            model(x).square().sum().backward()

        if kind == "state_from_smaller":
            other = torch.nn.Linear(4, n_small).to(dtype)
            other_opt = RAdam(other.parameters(), lr=0.01, **PATHS[path])
            other(x).sum().backward()
            other_opt.step()
            opt.load_state_dict(other_opt.state_dict())
            backward()
        elif kind == "data_replaced_larger":
            backward(); opt.step(); backward()
            params[0].data = torch.randn(n_big + n_small, 4, dtype=dtype)
            params[0].grad = torch.randn(n_big + n_small, 4, dtype=dtype)
        elif kind == "data_replaced_smaller_view":
            backward(); opt.step(); backward()
            params[1].data = params[1].data[: max(1, n_big // 2)]
            params[1].grad = torch.randn(params[1].shape, dtype=dtype)
        elif kind == "data_transposed":
            backward(); opt.step(); backward()
            params[0].data = params[0].data.t().contiguous().t()
        elif kind in ("grad_wider", "grad_narrower"):
            backward()
            p = params[0]
            p.grad_dtype = None
            other = torch.float64 if kind == "grad_wider" else torch.float32
            if other == p.dtype:
                other = torch.float32 if other == torch.float64 else torch.float64
            p.grad = torch.randn(p.shape, dtype=other)
        elif kind == "grad_strided":
            backward()
            p = params[0]
            p.grad = torch.randn(p.shape[1], p.shape[0], dtype=dtype).t()
        elif kind == "state_strided":
            backward(); opt.step(); backward()
            st = opt.state[params[0]]
            st["exp_avg"] = torch.zeros(st["exp_avg"].numel() * 2, dtype=st["exp_avg"].dtype)[::2].reshape(st["exp_avg"].shape)
        elif kind == "state_wrong_dtype":
            backward(); opt.step(); backward()
            st = opt.state[params[1]]
            st["exp_avg_sq"] = st["exp_avg_sq"].to(torch.int32)
        elif kind == "state_wrong_shape":
            backward(); opt.step(); backward()
            st = opt.state[params[1]]
            st["exp_avg"] = torch.zeros(n_small, dtype=st["exp_avg"].dtype)
        elif kind == "state_on_meta":
            backward(); opt.step(); backward()
            st = opt.state[params[0]]
            st["exp_avg"] = torch.zeros(params[0].shape, dtype=dtype, device="meta")
        elif kind == "state_aliased":
            backward(); opt.step(); backward()
            st = opt.state[params[0]]
            st["exp_avg_sq"] = st["exp_avg"]
        elif kind == "params_overlap":
            base = torch.randn(n_big + n_small, dtype=dtype)
            a = torch.nn.Parameter(base[:n_big])
            b = torch.nn.Parameter(base[n_small:])
            opt = RAdam([a, b], lr=0.01, weight_decay=wd, **PATHS[path])
            a.grad = torch.randn(a.shape, dtype=dtype)
            b.grad = torch.randn(b.shape, dtype=dtype)
            params = [a, b]
        elif kind == "state_count":
            backward(); opt.step(); backward()
            sd = opt.state_dict()
            sd["param_groups"][0]["params"] = sd["param_groups"][0]["params"][:1]
            opt.load_state_dict(sd)
        elif kind == "step_negative":
            backward(); opt.step(); backward()
            opt.state[params[1]]["step"].fill_(-1.0)
        else:
            raise ValueError(kind)
        return opt, params

    def run(probe, path):
        try:
            opt, params = build(probe, path)
        except Exception as exc:  # a setup the path refuses (e.g. load_state_dict)
            return ["raised", type(exc).__name__]
        try:
            opt.step()
            opt.step() if probe["twice"] else None
        except Exception as exc:
            return ["raised", type(exc).__name__]
        return ["ok", [x for p in params for x in p.detach().double().reshape(-1).tolist()]]

    probes = json.loads(sys.stdin.read())
    out = [{path: run(probe, path) for path in PATHS} for probe in probes]
    print(json.dumps(out))
''')

KINDS = ["state_from_smaller", "data_replaced_larger", "data_replaced_smaller_view",
         "data_transposed", "grad_wider", "grad_narrower", "grad_strided", "state_strided",
         "state_wrong_dtype", "state_wrong_shape", "state_on_meta", "state_aliased",
         "params_overlap", "state_count", "step_negative"]

probe_strategy = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS),
    "small": st.integers(1, 5),
    "big": st.integers(6, 600),
    "dtype": st.sampled_from(["float32", "float64"]),
    "wd": st.sampled_from([0.0, 0.1]),
    "seed": st.integers(0, 1000),
    "twice": st.booleans(),
})


def run_probes(probes: list[dict], env=None) -> list[dict]:
    result = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(probes),
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, (
        f"child crashed (exit {result.returncode}) on probes {probes}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_outcomes(probe, outcome) -> None:
    kind, values = outcome["single"]
    for path in ("foreach", "fused"):
        status, other = outcome[path]
        if status == "raised":
            continue  # raising is always allowed (nothing may crash)
        assert kind == "ok", f"{probe}: single-tensor path raised {values}, {path} ran"
        a, b = np.array(values), np.array(other)
        assert a.shape == b.shape, f"{probe}: {path} updated a different number of values"
        tol = 1e-5 if probe["dtype"] == "float32" else 1e-12
        assert np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True), (
            f"{probe}: {path} differs from the single-tensor path by "
            f"{np.nanmax(np.abs(a - b))}")


@settings(max_examples=1, deadline=None, database=None)
@given(probes=st.lists(probe_strategy, min_size=24, max_size=24))
def test_mismatched_buffers_give_the_single_tensor_result_or_raise(probes):
    """24 drawn probes plus every kind once, in one child process per example."""
    probes = probes + [{"kind": k, "small": 3, "big": 500, "dtype": "float32", "wd": 0.1,
                        "seed": 0, "twice": True} for k in KINDS]
    for probe, outcome in zip(probes, run_probes(probes)):
        check_outcomes(probe, outcome)


@needs_fused
def test_the_issue_cases_raise_clear_errors_on_the_fused_path():
    """State of Linear(4, 3) loaded into Linear(4, 500), and p.data replaced by a larger
    tensor: a clear error naming the parameter, and nothing written."""
    torch.manual_seed(0)
    small, big = torch.nn.Linear(4, 3), torch.nn.Linear(4, 500)
    small_opt, big_opt = RAdam(small.parameters()), RAdam(big.parameters())
    small(torch.randn(2, 4)).sum().backward()
    small_opt.step()
    with pytest.raises(TensorMismatchError, match=r"parameter 0.*\(3, 4\).*\(500, 4\)"):
        big_opt.load_state_dict(small_opt.state_dict())
    assert not big_opt.state  # unchanged

    model = torch.nn.Linear(4, 3)
    opt = RAdam(model.parameters())
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    weight = model.weight
    weight.data = torch.randn(500, 4)
    weight.grad = torch.randn(500, 4)
    before = weight.detach().clone()
    with pytest.raises(TensorMismatchError,
                       match=r"param_groups\[0\] parameter 0: state 'exp_avg' has shape \(3, 4\)"):
        opt.step()
    assert torch.equal(weight.detach(), before)


@needs_fused
@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_wider_grad_raises_like_torch_and_a_narrower_one_is_exact(path):
    p = torch.nn.Parameter(torch.randn(7))
    p.grad_dtype = None
    p.grad = torch.randn(7, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"parameter 0: grad dtype torch.float64 is wider"):
        RAdam([p], **PATHS[path]).step()
    reference = torch.optim.RAdam([torch.nn.Parameter(torch.ones(1))])  # torch raises too:
    reference.param_groups[0]["params"][0].grad_dtype = None
    reference.param_groups[0]["params"][0].grad = torch.ones(1, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        reference.step()

    q = torch.nn.Parameter(torch.randn(7, dtype=torch.float64))
    q.grad_dtype = None
    q.grad = torch.randn(7, dtype=torch.float32)
    single = torch.nn.Parameter(q.detach().clone())
    single.grad_dtype = None
    single.grad = q.grad.clone()
    ours, theirs = RAdam([q], **PATHS[path]), RAdam([single], foreach=False)
    for _ in range(8):
        ours.step()
        theirs.step()
    assert torch.equal(q.detach(), single.detach())


# --------------------------------------------------------------------------- #
# nonfinite="raise" anywhere; atomic load_state_dict
# --------------------------------------------------------------------------- #


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=4), min_size=1,
                      max_size=3),
       data=st.data(), bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]),
       path=st.sampled_from(sorted(PATHS)))
def test_nonfinite_raise_names_any_parameter_and_writes_nothing(sizes, data, bad, path):
    groups = [[torch.nn.Parameter(torch.randn(n)) for n in group] for group in sizes]
    candidates = [(gi, pi) for gi, group in enumerate(groups) for pi, p in enumerate(group)
                  if p.numel()]
    if not candidates:
        return
    gi, pi = data.draw(st.sampled_from(candidates))
    for group in groups:
        for p in group:
            p.grad = torch.randn(p.shape)
    element = data.draw(st.integers(0, groups[gi][pi].numel() - 1))
    groups[gi][pi].grad[element] = bad
    opt = RAdam([{"params": g} for g in groups], nonfinite="raise", **PATHS[path])
    before = [p.detach().clone() for group in groups for p in group]
    with pytest.raises(NonFiniteGradientError,
                       match=rf"param_groups\[{gi}\] parameter {pi} grad has non-finite"):
        opt.step()
    after = [p.detach() for group in groups for p in group]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert not opt.state


@pytest.mark.parametrize("damage", ["step -1", "step nan", "step 2.5", "shape", "dtype int",
                                    "complex", "groups", "count"])
def test_a_failed_load_state_dict_leaves_the_state_untouched(damage):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = RAdam(model.parameters(), weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    saved = opt.state_dict()
    snapshot = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    bad = {"state": {k: dict(v) for k, v in saved["state"].items()},
           "param_groups": [dict(g) for g in saved["param_groups"]]}
    first = bad["state"][0]
    if damage.startswith("step"):
        first["step"] = torch.tensor({"step -1": -1.0, "step nan": float("nan"),
                                      "step 2.5": 2.5}[damage])
    elif damage == "shape":
        bad["state"][1]["exp_avg"] = torch.zeros(5)
    elif damage == "dtype int":
        bad["state"][1]["exp_avg_sq"] = torch.zeros(2, dtype=torch.int64)
    elif damage == "complex":
        first["exp_avg"] = torch.zeros(2, 3, dtype=torch.complex64)
    elif damage == "groups":
        bad["param_groups"] = bad["param_groups"] * 2
    elif damage == "count":
        bad["param_groups"][0]["params"] = bad["param_groups"][0]["params"][:1]
    with pytest.raises((ValueError, TypeError)):
        opt.load_state_dict(bad)
    for p in model.parameters():
        for key, value in snapshot[id(p)].items():
            assert torch.equal(opt.state[p][key], value), (damage, key)


# --------------------------------------------------------------------------- #
# Fused mixed precision against an independent oracle
# --------------------------------------------------------------------------- #


def _round_bits(x: np.ndarray, dtype) -> torch.Tensor:
    """float32 values rounded once to ``dtype`` by an independent rule: NumPy's IEEE
    float16 cast, and for bfloat16 round-half-even on the float32 bits in integers."""
    if dtype == torch.float16:
        return torch.from_numpy(x.astype(np.float16))
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return torch.from_numpy(rounded.view(np.int16)).view(torch.bfloat16)


@needs_fused
@settings(max_examples=15, deadline=None)
@given(dtype=st.sampled_from([torch.bfloat16, torch.float16]),
       state=st.sampled_from(["float32", "low"]), n=st.integers(0, 300),
       steps=st.integers(1, 8), seed=st.integers(0, 2**16),
       profile=st.sampled_from(["paper", "torch_decoupled", "optax"]))
def test_fused_mixed_precision_is_the_float32_update_rounded_once(dtype, state, n, steps, seed,
                                                                  profile):
    """Each step equals radam_ref.step in float32 on the widened θ, g, m, v (torch
    arrays, as the torch backend evaluates the spec), each result rounded once to
    its storage dtype to nearest even."""
    generator = torch.Generator().manual_seed(seed)
    state_dtype = torch.float32 if state == "float32" else dtype
    config = RAdamConfig.from_profile(profile, lr=0.01, weight_decay=0.1)
    p = torch.nn.Parameter(torch.randn(n, generator=generator).to(dtype))
    opt = RAdam([p], profile=profile, lr=0.01, weight_decay=0.1, state_dtype=state_dtype,
                op_order="spec")
    m = torch.zeros(n)
    v = torch.zeros(n)
    for t in range(1, steps + 1):
        g = (torch.randn(n, generator=generator) * 3).to(dtype)
        p.grad = g
        theta = p.detach().float()
        (new_theta,), new = radam_ref.step([theta], [g.float()],
                                           radam_ref.RAdamState(t - 1, [m], [v]), config)
        opt.step()
        expected_p = _round_bits(new_theta.numpy(), dtype)
        got = p.detach()
        same = (got.view(torch.int16) == expected_p.view(torch.int16)) | (
            got.isnan() & expected_p.isnan())
        assert bool(same.all()), f"θ at t={t}"
        m, v = new.m[0], new.v[0]
        if state_dtype != torch.float32:
            m = _round_bits(m.numpy(), dtype).float()
            v = _round_bits(v.numpy(), dtype).float()
        assert torch.equal(opt.state[p]["exp_avg"].float(), m), f"m at t={t}"
        assert torch.equal(opt.state[p]["exp_avg_sq"].float(), v), f"v at t={t}"
        # continue from the optimizer's own (identical) state


# --------------------------------------------------------------------------- #
# Long float32 runs: the decay form decides the drift
# --------------------------------------------------------------------------- #

STEPS = 100_000
N_LONG = 8
BLOCK = 5_000


def _gradients(first: int, count: int) -> np.ndarray:
    """g_t for t = first … first + count − 1 (rows), one smooth signal per element."""
    t = np.arange(first, first + count, dtype=np.float64)[:, None]
    i = np.arange(N_LONG)
    return np.cos(0.37 * t + i) + 0.5 * np.sin(0.011 * t * (1 + i))


def _relative(x, reference) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.linalg.norm(x - reference) / np.linalg.norm(reference))


@needs_fused
def test_float32_runs_of_1e5_steps_stay_within_1e_4_of_the_float64_spec():
    """Paper profile (decay θ − (αλ)θ), lr 1e-3, wd 1e-2: after 10⁵ float32 steps the
    NumPy backend and the torch backend (fused CPU path) stay within 1e-4 relative of
    the float64 run (the NumPy backend in float64, bit-identical to radam_ref.step).
    torch's form θ·(1 − αλ) in float32 is already further off after 2·10⁴ steps (its
    factor rounds to float32), which shows the test can tell the forms apart.

    Cost: the float64 and float32 NumPy runs are one ``step_`` call per step (two
    parameters of two dtypes share one state), and the gradients are computed in
    blocks; every run still takes all 10⁵ steps one at a time."""
    from radam_ref.backends import numpy as nb

    subtract = RAdamConfig(lr=1e-3, weight_decay=1e-2)
    multiply = subtract.replace(decay_form="multiply")
    start = np.linspace(-1.0, 1.0, N_LONG)
    theta64, theta32, theta32_mul = start.copy(), start.astype(np.float32), start.astype(np.float32)
    pair, mul = nb.init([theta64, theta32]), nb.init([theta32_mul])
    p = torch.nn.Parameter(torch.from_numpy(start.astype(np.float32)))
    opt = RAdam([p], lr=1e-3, weight_decay=1e-2)
    g64, g32 = np.empty(N_LONG), np.empty(N_LONG, np.float32)
    p.grad = torch.from_numpy(g32)  # the same memory: refilled in place every step
    checkpoint = 20_000
    thetas, grads = [theta64, theta32], [g64, g32]
    for first in range(1, STEPS + 1, BLOCK):
        block = _gradients(first, BLOCK)
        block32 = block.astype(np.float32)
        for row, t in enumerate(range(first, first + BLOCK)):
            g64[:] = block[row]
            g32[:] = block32[row]
            nb.step_(thetas, grads, pair, subtract)
            opt.step()
            if t <= checkpoint:
                nb.step_([theta32_mul], [g32], mul, multiply)
        if first + BLOCK - 1 == checkpoint:
            assert _relative(theta32_mul, theta64) > 1e-4
    assert pair.count == STEPS and int(opt.state[p]["step"]) == STEPS
    assert _relative(theta32, theta64) < 1e-4
    assert _relative(p.detach().numpy(), theta64) < 1e-4


# --------------------------------------------------------------------------- #
# Fused vs single-tensor: the true bound
# --------------------------------------------------------------------------- #


@needs_fused
def test_fused_matches_single_tensor_per_step_within_the_documented_bound():
    """From the same state, one float32 step of the fused kernel and of the
    single-tensor path (op_order="spec") give bit-identical m and v, and θ within
    1 ulp of θ plus 2 ulp of the update (torch's CPU float32 sqrt is not always
    correctly rounded; the kernel's is), over 400 steps of 4096 elements whose
    gradients span 10¹³."""
    generator = torch.Generator().manual_seed(0)
    n = 4096
    a = torch.nn.Parameter(torch.randn(n, generator=generator))
    b = torch.nn.Parameter(a.detach().clone())
    single, fused = RAdam([a], foreach=False, weight_decay=0.1), RAdam([b], weight_decay=0.1)
    eps32 = torch.finfo(torch.float32).eps
    for t in range(400):
        g = torch.randn(n, generator=generator) * torch.exp(torch.randn(n, generator=generator) * 3)
        with torch.no_grad():
            b.copy_(a)
        if single.state:
            fused.state[b]["exp_avg"].copy_(single.state[a]["exp_avg"])
            fused.state[b]["exp_avg_sq"].copy_(single.state[a]["exp_avg_sq"])
        before = a.detach().clone()
        a.grad, b.grad = g.clone(), g.clone()
        single.step()
        fused.step()
        assert torch.equal(single.state[a]["exp_avg"], fused.state[b]["exp_avg"])
        assert torch.equal(single.state[a]["exp_avg_sq"], fused.state[b]["exp_avg_sq"])
        update = (a.detach() - before).abs()
        bound = eps32 * a.detach().abs() + 2 * eps32 * update
        assert bool(((a.detach() - b.detach()).abs() <= bound).all()), f"step {t + 1}"


# --------------------------------------------------------------------------- #
# Hostile review: regression tests
# --------------------------------------------------------------------------- #

#: Child: in-place changes to cached state and gradients after a fused step.  Each
#: case prints "raised <class>" or "ran <finite>"; a write out of bounds would
#: crash the child (or corrupt the allocator) instead.
IN_PLACE_CHILD = textwrap.dedent(r'''
    import sys, warnings
    import torch
    from radam_ref.backends.torch import RAdam
    warnings.simplefilter("ignore")
    n = 1 << 18  # the parallel kernel

    def case(name):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(n))
        opt = RAdam([p], lr=0.01)
        p.grad = torch.randn(n)
        opt.step(); opt.step()  # the table is cached now
        m, v = opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]
        if name == "exp_avg.resize_(larger)":
            m.resize_(64 * n)
        elif name == "exp_avg_sq.untyped_storage().resize_(0)":
            v.untyped_storage().resize_(0)
        elif name == "exp_avg.resize_(smaller)":
            m.resize_(10)
        elif name == "exp_avg.set_(smaller)":
            m.set_(torch.zeros(10))
        elif name == "exp_avg_sq.as_strided_":
            v.as_strided_((n // 2,), (2,))
        elif name == "grad.resize_(larger)":
            p.grad.resize_(64 * n)
        elif name == "grad.resize_(smaller)":
            p.grad.resize_(10)
        elif name == "param.resize_(larger)":
            p.data.resize_(64 * n)
        for _ in range(3):
            opt.step()
        return bool(torch.isfinite(p).all())

    for name in sys.argv[1:]:
        try:
            print(name, "ran", case(name), flush=True)
        except Exception as exc:
            print(name, "raised", type(exc).__name__, flush=True)
''')

IN_PLACE_CASES = ["exp_avg.resize_(larger)", "exp_avg_sq.untyped_storage().resize_(0)",
                  "exp_avg.resize_(smaller)", "exp_avg.set_(smaller)", "exp_avg_sq.as_strided_",
                  "grad.resize_(larger)", "grad.resize_(smaller)", "param.resize_(larger)"]


@needs_fused
def test_in_place_resizing_of_cached_buffers_never_reaches_out_of_bounds():
    """The fused path does not re-read the state tensors' sizes every step (see the
    ``_torch_fused_cpu`` docstring).  That is memory-safe: the table's NumPy views
    make every buffer's storage non-resizable (growing it raises in torch itself),
    and a view keeps the storage it was built on alive, so shrinking or re-pointing
    a tensor in place leaves the kernel writing memory it owns.  The child must
    survive every case; growing must raise before anything runs."""
    result = subprocess.run([sys.executable, "-c", IN_PLACE_CHILD, *IN_PLACE_CASES],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"child crashed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    outcomes = {line.rsplit(" ", 2)[0]: line.rsplit(" ", 2)[1:]
                for line in result.stdout.strip().splitlines()}
    assert set(outcomes) == set(IN_PLACE_CASES), result.stdout
    for name in ("exp_avg.resize_(larger)", "exp_avg_sq.untyped_storage().resize_(0)",
                 "grad.resize_(larger)", "param.resize_(larger)"):
        assert outcomes[name] == ["raised", "RuntimeError"], (name, outcomes[name])


def _two_params(n: int, **options):
    generator = torch.Generator().manual_seed(1)
    a = torch.nn.Parameter(torch.randn(n, generator=generator))
    b = torch.nn.Parameter(torch.randn(n, generator=generator))
    opt = RAdam([a, b], weight_decay=0.1, **options)
    a.grad, b.grad = torch.randn(n, generator=generator), torch.randn(n, generator=generator)
    opt.step()
    return a, b, opt


@pytest.mark.parametrize("path", ["fused", "foreach"])
@pytest.mark.parametrize("n", [100, 1 << 18])
@pytest.mark.parametrize("alias", ["own parameter", "other parameter", "other's exp_avg"])
def test_a_gradient_sharing_memory_with_a_written_buffer_raises_on_multi_tensor_paths(
        path, n, alias):
    """A multi-tensor step writes θ, m, v in place while it reads g: a gradient that
    shares memory with one of them would be read after it was written (the
    sequential single-tensor path reads it before), in the parallel kernel even
    racily.  Found: the fused path checked this only when it built its table, so a
    gradient replaced after a cached step went through; the foreach path never
    checked it.  Both now raise before anything is written."""
    if path == "fused" and not _torch_fused_cpu.AVAILABLE:
        pytest.skip("no numba")
    a, b, opt = _two_params(n, **PATHS[path])
    before = [a.detach().clone(), b.detach().clone(), opt.state[a]["exp_avg"].clone()]
    source = {"own parameter": b, "other parameter": a,
              "other's exp_avg": opt.state[a]["exp_avg"]}[alias]
    a.grad = torch.randn(n)
    b.grad = source.detach()
    with pytest.raises(TensorMismatchError, match="share memory"):
        opt.step()
    assert torch.equal(a.detach(), before[0]) and torch.equal(b.detach(), before[1])
    assert torch.equal(opt.state[a]["exp_avg"], before[2])
    b.grad = source.detach().clone()  # a copy is fine again
    opt.step()


@pytest.mark.parametrize("damage", ["exp_avg on meta", "no exp_avg_sq", "no step"])
def test_load_state_dict_rejects_meta_and_partial_states_before_changing_anything(damage):
    """Found: a meta ``exp_avg`` failed inside torch's copy (NotImplementedError, no
    parameter named); a state missing a key loaded fine and every later step raised.
    Both are now refused by the atomic check, naming the parameter."""
    a, b, opt = _two_params(10)
    saved = opt.state_dict()
    state = saved["state"][1]
    if damage == "exp_avg on meta":
        state["exp_avg"] = torch.empty(10, device="meta")
    elif damage == "no exp_avg_sq":
        del state["exp_avg_sq"]
    else:
        del state["step"]
    before = {k: v.clone() for k, v in opt.state[b].items()}
    with pytest.raises((ValueError, TensorMismatchError), match="param_groups\\[0\\] parameter 1"):
        opt.load_state_dict(saved)
    assert all(torch.equal(before[k], opt.state[b][k]) for k in before)
    opt.step()


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_raise_catches_the_last_bf16_element_of_the_last_group(path, bad):
    """NaN/±inf only in the very last element of the last parameter of the last
    group, bfloat16: NonFiniteGradientError naming that parameter; nothing written."""
    params = [torch.nn.Parameter(torch.randn(n, dtype=torch.bfloat16)) for n in (3, 5, 7, 9)]
    opt = RAdam([{"params": params[:2]}, {"params": params[2:]}], nonfinite="raise",
                **PATHS[path])
    for p in params:
        p.grad = torch.randn(p.shape, dtype=torch.bfloat16)
    opt.step()
    params[-1].grad[-1] = bad
    before = [(p.detach().clone(), opt.state[p]["exp_avg"].clone(),
               opt.state[p]["step"].clone()) for p in params]
    with pytest.raises(NonFiniteGradientError, match=r"param_groups\[1\] parameter 1"):
        opt.step()
    for p, (theta, m, step) in zip(params, before):
        assert torch.equal(p.detach(), theta) and torch.equal(opt.state[p]["exp_avg"], m)
        assert torch.equal(opt.state[p]["step"], step)


THREADS_CHILD = textwrap.dedent(r'''
    import threading, warnings
    import torch
    from radam_ref.backends.torch import RAdam
    warnings.simplefilter("ignore")

    def setup(seed):
        g = torch.Generator().manual_seed(seed)
        sizes = [300_000, 1_000, 50_000]  # parallel and serial kernels
        ps = [torch.nn.Parameter(torch.randn(k, generator=g)) for k in sizes]
        grads = [[torch.randn(k, generator=g) for k in sizes] for _ in range(12)]
        return ps, grads

    def run(ps, grads):
        opt = RAdam(ps, weight_decay=0.1)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g
            opt.step()

    work = [setup(seed) for seed in (0, 1)]
    reference = [setup(seed) for seed in (0, 1)]
    threads = [threading.Thread(target=run, args=w) for w in work]
    for t in threads: t.start()
    for t in threads: t.join()
    for w in reference:
        run(*w)
    print(all(torch.equal(p, q) for w, r in zip(work, reference) for p, q in zip(w[0], r[0])))
''')


@needs_fused
def test_two_optimizers_stepping_in_two_threads_give_the_sequential_results():
    """Two optimizers on different parameters stepping concurrently in two Python
    threads (the kernel launches under the numba parallel layer's lock): no crash,
    and results bit-identical to the same steps run one after the other."""
    result = subprocess.run([sys.executable, "-c", THREADS_CHILD], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"child crashed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    assert result.stdout.strip().splitlines()[-1] == "True"


DTYPE_CHILD = textwrap.dedent(r'''
    import itertools, json, warnings
    import torch
    from radam_ref.backends.torch import RAdam
    warnings.simplefilter("ignore")
    DTYPES = ["float16", "bfloat16", "float32", "float64"]
    PATHS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {},
             "torch": None}

    def run(param, grad, state, path):
        torch.manual_seed(0)
        p = torch.nn.Parameter(torch.randn(37).to(getattr(torch, param)))
        if PATHS[path] is None:  # torch.optim.RAdam: its state dtype is the parameter's
            if state != "default":
                return None
            opt = torch.optim.RAdam([p], lr=0.01, weight_decay=0.1, foreach=False)
        else:
            opt = RAdam([p], lr=0.01, weight_decay=0.1, **PATHS[path],
                        state_dtype=None if state == "default" else getattr(torch, state))
        p.grad_dtype = None
        try:
            for _ in range(3):
                p.grad = torch.randn(37).to(getattr(torch, grad))
                opt.step()
        except Exception as exc:
            return ["raised", [c.__name__ for c in type(exc).__mro__]]
        return ["ok", p.detach().double().tolist()]

    out = []
    for param, grad, state in itertools.product(DTYPES, DTYPES, DTYPES + ["default"]):
        out.append([param, grad, state, {path: run(param, grad, state, path) for path in PATHS}])
    print(json.dumps(out))
''')


def test_every_param_grad_state_dtype_combination_matches_single_tensor_or_raises_alike():
    """param × grad × state dtype over float16, bfloat16, float32, float64 (and the
    default state), three steps on each CPU path.  Each path gives the single-tensor
    path's θ — within 4 ulp per step of the narrower of the parameter and state
    dtypes (the fused kernel rounds mixed precision once; foreach orders operations
    differently) — or raises the same error class; where the single-tensor path
    raises, so does torch.optim.RAdam (same class), and where torch's succeeds, ours
    does too.  One child process runs all 320 cases."""
    result = subprocess.run([sys.executable, "-c", DTYPE_CHILD], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"child crashed (exit {result.returncode}):\n{result.stderr[-3000:]}"
    cases = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(cases) == 80
    width = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23,
             "float64": 2.0 ** -52}
    for param, grad, state, outcome in cases:
        single = outcome["single"]
        narrow = max(width[param], width[param if state == "default" else state])
        for path in ("foreach", "fused"):
            status, value = outcome[path]
            where = (param, grad, state, path)
            assert status == single[0], (where, outcome)
            if status == "raised":
                assert value[0] == single[1][0], (where, value, single[1])
                continue
            a, b = np.array(single[1]), np.array(value)
            bound = 3 * 4 * narrow * np.maximum(np.abs(a), 1.0)
            assert np.all(np.abs(a - b) <= bound), (where, np.max(np.abs(a - b)))
        reference = outcome["torch"]
        if reference is not None:
            if reference[0] == "raised":
                assert single[0] == "raised" and reference[1][0] in single[1], (param, grad, outcome)
            else:
                assert single[0] == "ok", (param, grad, outcome)


@needs_fused
def test_replaced_gradients_on_a_cached_table_give_the_rebuilt_tables_result():
    """The usual loop replaces every gradient each step (``zero_grad()`` sets them to
    None).  The cached table takes new gradients of the same layout by address;
    a changed layout, a gradient going to None, or a non-contiguous one rebuilds.
    Every step must equal a fresh optimizer's (the same kernel from rebuilt
    tables, fed copies): bit for bit."""
    generator = torch.Generator().manual_seed(3)
    shapes = [(40, 30), (7,), (5, 6)]
    cached = [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]
    fresh = [torch.nn.Parameter(p.detach().clone()) for p in cached]
    opt, rebuilt = RAdam(cached, weight_decay=0.1), RAdam(fresh, weight_decay=0.1)
    for step in range(8):
        grads = [torch.randn(s, generator=generator) for s in shapes]
        if step == 3:
            grads[0] = torch.randn(30, 40, generator=generator).t()  # another layout
        if step == 5:
            grads[1] = None
        for p, q, g in zip(cached, fresh, grads):
            p.grad, q.grad = g, None if g is None else g.clone()
        opt.step()
        rebuilt.__dict__.pop("_fused_plans", None)  # its tables are rebuilt every step
        rebuilt.step()
        for p, q in zip(cached, fresh):
            assert torch.equal(p, q), f"step {step + 1}"


@needs_fused
def test_a_checkpoint_with_transposed_or_half_state_loads_in_the_parameters_layout():
    """Found: ``load_state_dict`` kept a saved moment's strides (``.to(copy=True)``
    preserves them), so a transposed ``exp_avg`` stayed non-contiguous and a
    ``fused=True`` optimizer raised on every later step.  Now the moments take the
    parameter's layout and dtype, with the saved values (float16 widened exactly)."""
    p = torch.nn.Parameter(torch.randn(6, 4))
    opt = RAdam([p], fused=True)
    p.grad = torch.randn(6, 4)
    opt.step()
    saved = opt.state_dict()
    m = saved["state"][0]["exp_avg"].t().contiguous().t()
    v = saved["state"][0]["exp_avg_sq"].half()
    saved["state"][0]["exp_avg"], saved["state"][0]["exp_avg_sq"] = m, v
    opt.load_state_dict(saved)
    loaded = opt.state[p]
    assert loaded["exp_avg"].is_contiguous() and loaded["exp_avg_sq"].dtype == torch.float32
    assert torch.equal(loaded["exp_avg"], m) and torch.equal(loaded["exp_avg_sq"], v.float())
    opt.step()
    assert int(loaded["step"]) == 2
