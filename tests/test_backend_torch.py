"""Tests of ``radam_ref.backends.torch`` in the style of torch's optimizer tests.

A table of optimizer inputs (``OPTIM_INPUTS``) and of error inputs
(``ERROR_INPUTS``, matched by regex) drives the deterministic tests; Hypothesis
properties draw profiles, axis overrides, hyperparameters (β₂ ≤ 0.6, thresholds
placed exactly on a step's ρ_t), shapes (0-size, non-contiguous), dtypes, groups
and gradient streams.  The oracles are :func:`radam_ref.step` (the spec),
``torch.optim.RAdam`` itself, and formulas written here; no expected value comes
from the code under test.
"""

from __future__ import annotations

import copy
import io
import math

import pytest

torch = pytest.importorskip("torch")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import radam_ref  # noqa: E402
from radam_ref import PROFILES, NonFiniteGradientError, RAdamConfig  # noqa: E402
from radam_ref.backends import _torch_fused_cpu, _torch_scalars  # noqa: E402
from radam_ref.backends._torch_scalars import HostScalars  # noqa: E402
from radam_ref.backends._torch_single import update_single  # noqa: E402
from radam_ref.backends.torch import AXES, RAdam, radam  # noqa: E402

needs_fused = pytest.mark.skipif(not _torch_fused_cpu.AVAILABLE,
                                 reason=_torch_fused_cpu.UNAVAILABLE_REASON or "no numba")

# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #

#: (constructor keywords, description).  Every entry runs on every path.
OPTIM_INPUTS = [
    ({}, "paper profile defaults"),
    ({"lr": 0.05, "weight_decay": 0.1}, "paper, decoupled weight decay"),
    ({"profile": "torch", "weight_decay": 0.1}, "torch, L2 weight decay"),
    ({"profile": "torch", "weight_decay": 0.1, "decoupled_weight_decay": True},
     "torch, decoupled_weight_decay=True"),
    ({"profile": "authors", "weight_decay": 0.1}, "authors: no update before rectification"),
    ({"profile": "optax", "eps_root": 1e-10}, "optax: eps after bias correction, eps_root"),
    ({"profile": "optax", "nesterov": True, "lr": 0.05}, "optax nesterov"),
    ({"profile": "tf_addons", "weight_decay": 0.05}, "tf_addons"),
    ({"profile": "timm", "weight_decay": 0.05}, "timm"),
    ({"maximize": True, "lr": 0.05}, "maximize"),
    ({"betas": (0.5, 0.6)}, "beta2 <= 0.6: never rectified"),
    ({"betas": (0.0, 0.99), "eps": 0.0}, "beta1 = 0, eps = 0"),
    ({"weight_decay_mode": "decoupled_moving", "before_rectification": "none",
      "weight_decay": 0.2}, "decoupled decay only on moving steps"),
    ({"threshold": 5.0, "comparison": ">="}, "threshold 5, >="),
]

#: (constructor keywords, exception, regex the message must match).
ERROR_INPUTS = [
    ({"lr": -1.0}, ValueError, r"Invalid learning rate( value)?: -1\.0"),
    ({"lr": float("nan")}, ValueError, r"Invalid learning rate( value)?: nan"),
    ({"lr": torch.tensor([0.1, 0.2])}, ValueError, r"Tensor lr must be 1-element"),
    ({"betas": (1.5, 0.999)}, ValueError, r"Invalid beta parameter at index 0: 1\.5"),
    ({"betas": (0.9, 1.0)}, ValueError, r"Invalid beta parameter at index 1: 1\.0"),
    ({"betas": (0.9, -0.1)}, ValueError, r"Invalid beta parameter at index 1: -0\.1"),
    ({"betas": (0.9,)}, TypeError, r"betas must be a pair"),
    ({"betas": (0.9, "a")}, TypeError, r"index 1 must be a real number, got 'a'"),
    ({"eps": -1e-8}, ValueError, r"Invalid epsilon value: -1e-08"),
    ({"weight_decay": -0.1}, ValueError, r"Invalid weight_decay value: -0\.1"),
    ({"threshold": 3.0}, ValueError, r"Invalid threshold: 3\.0"),
    ({"comparison": "<"}, ValueError, r"Invalid comparison: '<'"),
    ({"eps_placement": "inside"}, ValueError, r"Invalid eps_placement: 'inside'"),
    ({"eps_root": -1.0}, ValueError, r"Invalid eps_root value: -1\.0"),
    ({"weight_decay_mode": "adamw"}, ValueError, r"Invalid weight_decay_mode: 'adamw'"),
    ({"before_rectification": "adam"}, ValueError, r"Invalid before_rectification: 'adam'"),
    ({"nonfinite": "ignore"}, ValueError, r"Invalid nonfinite: 'ignore'"),
    ({"nesterov": 1}, TypeError, r"nesterov must be a bool, got 1"),
    ({"maximize": "yes"}, TypeError, r"maximize must be a bool, got 'yes'"),
    ({"profile": "adamw"}, ValueError, r"Unknown profile: 'adamw'"),
    ({"profile": 3}, TypeError, r"profile must be a string, got 3"),
    ({"op_order": "fast"}, ValueError, r"Invalid op_order: 'fast'"),
    ({"op_order": "torch", "eps_placement": "after_bias_correction"}, ValueError,
     r"Invalid op_order: 'torch'.*eps_placement='after_bias_correction'"),
    ({"op_order": "torch", "nesterov": True}, ValueError,
     r"Invalid op_order: 'torch'.*nesterov=True"),
    ({"decoupled_weight_decay": True, "weight_decay_mode": "l2"}, ValueError,
     r"Invalid weight_decay_mode: 'l2' contradicts decoupled_weight_decay=True"),
    ({"decoupled_weight_decay": "yes"}, TypeError, r"decoupled_weight_decay must be a bool"),
    ({"state_dtype": torch.int32}, TypeError,
     r"state_dtype must be None or a floating torch\.dtype, got torch\.int32"),
    ({"foreach": "yes"}, TypeError, r"foreach must be None or a bool, got 'yes'"),
    ({"capturable": None}, TypeError, r"capturable must be a bool, got None"),
    ({"fused": True, "foreach": True}, RuntimeError, r"`fused` and `foreach` cannot be `True`"),
    ({"fused": True, "differentiable": True}, RuntimeError, r"`fused` does not support"),
]

#: Execution paths: constructor keywords selecting each.
PATHS = {
    "single": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True} if _torch_fused_cpu.AVAILABLE else {"foreach": True},
    "default": {},
    "capturable": {"capturable": True},
}


# --------------------------------------------------------------------------- #
# Oracle helpers (the spec, applied one parameter at a time)
# --------------------------------------------------------------------------- #


def expected_config(kwargs: dict) -> RAdamConfig:
    """The spec config a constructor call means: the profile, then the keywords."""
    kwargs = dict(kwargs)
    profile = kwargs.pop("profile", "paper")
    overrides = {k: v for k, v in kwargs.items()
                 if k in ("lr", "betas", "eps", "weight_decay", *AXES)}
    if isinstance(overrides.get("lr"), torch.Tensor):
        overrides["lr"] = float(overrides["lr"])
    if "decoupled_weight_decay" in kwargs:
        overrides["weight_decay_mode"] = ("decoupled" if kwargs["decoupled_weight_decay"]
                                          else "l2")
    return RAdamConfig.from_profile(profile, **overrides)


class SpecParam:
    """One parameter's trajectory under the spec (its own step count, as torch keeps)."""

    def __init__(self, value: torch.Tensor, config: RAdamConfig):
        self.config = config
        self.value = value.detach().clone()
        self.real = torch.view_as_real(self.value) if self.value.is_complex() else self.value
        self.state = radam_ref.init(self.real.clone())

    def step(self, grad: torch.Tensor) -> None:
        g = torch.view_as_real(grad) if grad.is_complex() else grad
        self.real, self.state = radam_ref.step(self.real, g.detach().clone(), self.state,
                                               self.config)

    def as_param_dtype(self, x):
        return torch.view_as_complex(x.contiguous()) if self.value.is_complex() else x


def assert_exact(actual, expected, what: str) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=0, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


def _real(x):
    return torch.view_as_real(x) if x.is_complex() else x


def magnitudes(config: RAdamConfig, t: int, p, g, m, v, v_new):
    """Per-element sums of the absolute values of the terms of one step (float64).

    Standard forward error analysis: each of the few operations of a step adds
    at most one rounding relative to the magnitude of its terms, so two correct
    implementations of the step differ by at most a small multiple of
    eps·magnitude.  Returns (|m| terms, |v| terms, |θ| terms), the θ terms
    built on the m terms.
    """
    p, g, m, v, v_new = (_real(x).double().abs() for x in (p, g, m, v, v_new))
    b1, b2 = config.betas
    s = config.schedule(t)
    if config.weight_decay_mode == "l2":
        g = g + config.weight_decay * p
    # |m| + |g|, not β₁|m| + (1−β₁)|g|: torch's lerp forms m + w(g − m) with the
    # weight w = 1 − β₁ rounded to the tensor dtype, an error of eps·|m| for any β₁.
    mag_m = m + g
    mag_v = b2 * v + (1 - b2) * g * g
    if config.nesterov:
        m_hat = (b1 * mag_m / config.schedule(t + 1).bias_correction1
                 + (1 - b1) * g / s.bias_correction1)
    else:
        m_hat = mag_m / s.bias_correction1
    mag_p = p.clone()
    if s.rectified:
        if config.eps_placement == "before_bias_correction":
            adaptive = s.bias_correction2 ** 0.5 / ((v_new + config.eps_root).sqrt() + config.eps)
        else:
            adaptive = 1 / ((v_new / s.bias_correction2 + config.eps_root).sqrt() + config.eps)
        mag_p = mag_p + config.lr * s.r_t * m_hat * adaptive
    else:
        mag_p = mag_p + config.lr * m_hat
    return mag_m, mag_v, mag_p


def assert_within(actual, expected, magnitude, dtype, what: str, ulps: float = 16.0) -> None:
    """|actual − expected| ≤ ulps · eps(dtype) · magnitude, elementwise (NaNs must agree)."""
    a, e = _real(actual).double(), _real(expected).double()
    assert torch.equal(a.isnan(), e.isnan()), f"{what}: NaN positions differ"
    finite = ~e.isnan()
    bound = ulps * torch.finfo(dtype).eps * magnitude.double()
    excess = ((a - e).abs() - bound)[finite]
    if excess.numel() and excess.max() > 0:
        index = int(excess.argmax())
        raise AssertionError(
            f"{what}: |actual - expected| exceeds {ulps} eps x magnitude; worst element "
            f"actual={a[finite][index].item()!r} expected={e[finite][index].item()!r} "
            f"bound={bound[finite][index].item()!r}")


# --------------------------------------------------------------------------- #
# Drawing a problem
# --------------------------------------------------------------------------- #

SHAPES = [(), (0,), (3,), (2, 3), (4, 5), (3, 0), (6, 2, 2)]
LAYOUTS = ("contiguous", "transposed", "strided")


def make_leaf(shape, layout: str, dtype, generator) -> torch.Tensor:
    """A leaf parameter; ``transposed`` and ``strided`` give non-contiguous leaves."""
    if layout == "transposed" and len(shape) >= 2:
        base = torch.randn(shape[::-1], generator=generator, dtype=dtype)
        return base.transpose(0, -1).detach().requires_grad_()
    if layout == "strided" and len(shape) >= 1:
        base = torch.randn((shape[0] * 2, *shape[1:]), generator=generator, dtype=dtype)
        return base[::2].detach().requires_grad_()
    return torch.randn(shape, generator=generator, dtype=dtype).requires_grad_()


def make_grad(p: torch.Tensor, kind: str, generator) -> torch.Tensor | None:
    if kind == "none":
        return None
    if kind == "zero":
        return torch.zeros_like(p)
    scale = 10.0 ** torch.randint(-3, 2, (), generator=generator).item()
    return scale * torch.randn(p.shape, generator=generator, dtype=p.dtype)


beta2s = st.one_of(
    st.sampled_from([0.0, 0.5, 0.6, 0.6001, 0.7, 0.9, 0.99, 0.999, 0.9999, 0.99999]),
    st.floats(0.0, 0.99999),
)


@st.composite
def group_options(draw, steps: int) -> dict:
    """Constructor keywords of one group: a profile and a drawn subset of overrides."""
    options = {"profile": draw(st.sampled_from(sorted(PROFILES)))}
    beta1 = draw(st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99))
    beta2 = draw(beta2s)
    options["betas"] = (beta1, beta2)
    options["lr"] = draw(st.sampled_from([1e-3, 0.1]) | st.floats(1e-5, 0.5))
    options["weight_decay"] = draw(st.sampled_from([0.0, 0.1]) | st.floats(0.0, 0.5))
    options["eps"] = draw(st.sampled_from([1e-8, 1e-3, 0.0]))
    chosen = draw(st.sets(st.sampled_from(
        ["comparison", "eps_placement", "eps_root", "weight_decay_mode", "decay_form",
         "before_rectification", "nesterov", "maximize"])))
    values = {
        "comparison": st.sampled_from([">", ">="]),
        "eps_placement": st.sampled_from(radam_ref.EPS_PLACEMENTS),
        "eps_root": st.sampled_from([0.0, 1e-12, 1e-4]),
        "weight_decay_mode": st.sampled_from(radam_ref.WEIGHT_DECAY_MODES),
        "decay_form": st.sampled_from(radam_ref.DECAY_FORMS),
        "before_rectification": st.sampled_from(radam_ref.BEFORE_RECTIFICATION),
        "nesterov": st.booleans(),
        "maximize": st.booleans(),
    }
    for key in sorted(chosen):
        options[key] = draw(values[key])
    # Near-threshold: put the threshold exactly on (or one ulp beside) some ρ_t.
    if draw(st.booleans()):
        t_star = draw(st.integers(1, steps))
        rho = radam_ref.schedule(t_star, beta1=beta1, beta2=beta2).rho_t
        rho = draw(st.sampled_from([rho, math.nextafter(rho, math.inf),
                                    math.nextafter(rho, -math.inf)]))
        if rho >= 4.0:
            options["threshold"] = rho
    return options


@st.composite
def problems(draw, dtypes=(torch.float32, torch.float64), max_steps: int = 9):
    steps = draw(st.integers(1, max_steps) | st.just(max_steps))  # often past the threshold
    dtype = draw(st.sampled_from(dtypes))
    groups = []
    for _ in range(draw(st.integers(1, 3))):
        tensors = draw(st.lists(st.tuples(st.sampled_from(SHAPES), st.sampled_from(LAYOUTS)),
                                min_size=1, max_size=3))
        groups.append((draw(group_options(steps)), tensors))
    kinds = draw(st.lists(st.lists(st.sampled_from(["normal"] * 6 + ["zero", "none"]),
                                   min_size=9, max_size=9), min_size=steps, max_size=steps))
    seed = draw(st.integers(0, 2**31 - 1))
    return steps, dtype, groups, kinds, seed


def build(problem, path_options: dict, force: dict | None = None):
    """(optimizer, params, spec trajectories, per-step grads) for a drawn problem."""
    steps, dtype, groups, kinds, seed = problem
    generator = torch.Generator().manual_seed(seed)
    param_groups, specs, params = [], [], []
    for options, tensors in groups:
        options = {**options, **(force or {})}
        leaves = [make_leaf(shape, layout, dtype, generator) for shape, layout in tensors]
        config = expected_config(options)
        param_groups.append({"params": leaves, **options})
        specs += [SpecParam(leaf, config) for leaf in leaves]
        params += leaves
    grads = [[make_grad(p, kinds[s][i % 9], generator) for i, p in enumerate(params)]
             for s in range(steps)]
    optimizer = RAdam(param_groups, **path_options)
    return optimizer, params, specs, grads


def rebuilt_on_default_path(optimizer):
    """The same groups with path selection left to the optimizer (fused where possible)."""
    return RAdam([{**group, "fused": None, "foreach": None}
                  for group in optimizer.param_groups])


def set_grads(params, grads) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()


# --------------------------------------------------------------------------- #
# Construction and validation
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("kwargs", "error", "regex"), ERROR_INPUTS,
                         ids=[str(i) for i in range(len(ERROR_INPUTS))])
def test_error_inputs(kwargs, error, regex):
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(error, match=regex):
        RAdam([p], **kwargs)


@pytest.mark.parametrize(("kwargs", "error", "regex"), ERROR_INPUTS[:12],
                         ids=[str(i) for i in range(12)])
def test_error_inputs_in_add_param_group_leave_groups_unchanged(kwargs, error, regex):
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    optimizer = RAdam([a])
    with pytest.raises(error, match=regex):
        optimizer.add_param_group({"params": [b], **kwargs})
    assert len(optimizer.param_groups) == 1


def test_defaults_come_from_the_profile():
    p = torch.zeros(1, requires_grad=True)
    group = RAdam([p], profile="tf_addons").param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        1e-3, (0.9, 0.999), 1e-7, 0.0)
    assert RAdam([p]).param_groups[0]["eps"] == 1e-8


def test_decoupled_weight_decay_maps_to_the_spec_modes():
    p = torch.zeros(1, requires_grad=True)
    from radam_ref.backends.torch import group_config

    for flag, mode in ((True, "decoupled"), (False, "l2"), (None, "decoupled")):
        group = RAdam([p], decoupled_weight_decay=flag).param_groups[0]
        assert group_config(group).weight_decay_mode == mode
    group = RAdam([p], profile="torch").param_groups[0]
    assert group_config(group).weight_decay_mode == "l2"


def test_invalid_lr_set_later_raises_at_step_before_anything_is_written():
    a = torch.ones(4, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    optimizer = RAdam([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad, b.grad = torch.ones(4), torch.ones(3)
    optimizer.step()
    before = copy.deepcopy((a.detach(), b.detach(), optimizer.state_dict()["state"]))
    optimizer.param_groups[1]["lr"] = -0.5
    with pytest.raises(ValueError, match=r"Invalid learning rate( value)?: -0\.5"):
        optimizer.step()
    assert torch.equal(a, before[0]) and torch.equal(b, before[1])
    for key, saved in before[2].items():
        for name, value in saved.items():
            assert torch.equal(optimizer.state_dict()["state"][key][name], value)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_nonfinite_raise_writes_nothing(path):
    a = torch.ones(4, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    optimizer = RAdam([{"params": [a]}, {"params": [b]}], nonfinite="raise", **PATHS[path])
    a.grad = torch.ones(4)
    b.grad = torch.tensor([1.0, float("nan"), 0.0])
    with pytest.raises(NonFiniteGradientError,
                       match=r"param_groups\[1\] parameter 0 grad has non-finite .* step 1"):
        optimizer.step()
    assert torch.equal(a, torch.ones(4)) and torch.equal(b, torch.ones(3))
    assert len(optimizer.state) == 0
    b.grad = torch.ones(3)
    optimizer.step()
    assert int(optimizer.state[a]["step"]) == 1


def test_sparse_gradients_are_rejected():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="does not support sparse gradients"):
        RAdam([p], foreach=False).step()


@needs_fused
def test_fused_true_rejects_tensors_it_cannot_take():
    p = torch.zeros(4, 3).t().detach().requires_grad_()  # not contiguous
    p.grad = torch.ones(3, 4)
    optimizer = RAdam([p], fused=True)
    with pytest.raises(RuntimeError, match=r"fused=True supports contiguous"):
        optimizer.step()
    assert torch.equal(p, torch.zeros(3, 4))


# --------------------------------------------------------------------------- #
# The math: every input on every path against the spec
# --------------------------------------------------------------------------- #


def run_against_spec(optimizer, params, specs, grads, *, exact: bool, label: str):
    """Step ``optimizer`` and the spec together, comparing θ, m, v and the count.

    Before each step the optimizer is put in the spec's state (so a tolerance
    never has to cover accumulated history); ``exact`` demands bit equality.
    """
    for step_index, step_grads in enumerate(grads):
        with torch.no_grad():
            for p, spec in zip(params, specs):
                p.copy_(spec.as_param_dtype(spec.real))
                if p in optimizer.state and optimizer.state[p]:
                    optimizer.state[p]["exp_avg"].copy_(spec.as_param_dtype(spec.state.m))
                    optimizer.state[p]["exp_avg_sq"].copy_(spec.as_param_dtype(spec.state.v))
        before = [(spec.real.clone(), spec.state) for spec in specs]
        set_grads(params, step_grads)
        optimizer.step()
        for index, (p, spec, g) in enumerate(zip(params, specs, step_grads)):
            if g is None:
                taken = int(optimizer.state[p]["step"]) if p in optimizer.state else 0
                assert taken == spec.state.count
                continue
            spec.step(g)
            state = optimizer.state[p]
            where = f"{label}, step {step_index + 1}, param {index}"
            assert int(state["step"]) == spec.state.count, where
            actual = (_real(p.detach()), _real(state["exp_avg"]), _real(state["exp_avg_sq"]))
            expected = (spec.real, spec.state.m, spec.state.v)
            if exact:
                for name, a, e in zip("θmv", actual, expected):
                    assert_exact(a, e, f"{where}: {name}")
            else:
                p0, old = before[index]
                mags = magnitudes(spec.config, spec.state.count, p0, g, old.m, old.v,
                                  spec.state.v)
                for name, a, e, mag in zip("mvθ", actual[1:] + actual[:1],
                                           expected[1:] + expected[:1], mags):
                    assert_within(a, e, mag, p.dtype, f"{where}: {name}")


def _spec_order_is_exact(options: dict, path: str) -> bool:
    """Bit equality with the spec is promised for the spec's operation order (the
    default except for the torch profiles) on the single and capturable paths.  The
    fused kernel's square root is IEEE while torch's float32 CPU sqrt is not always
    correctly rounded, so it is held to the rounding bound (and, per step, to the
    bound tested in test_backend_torch_adversarial.py)."""
    config = expected_config(options)
    torch_order = options.get("op_order") == "torch" or (
        "op_order" not in options and config.profile in ("torch", "torch_decoupled")
        and config.eps_placement == "before_bias_correction" and not config.eps_root
        and not config.nesterov)
    return not torch_order and path in ("single", "capturable")


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(("kwargs", "desc"), OPTIM_INPUTS, ids=[d for _, d in OPTIM_INPUTS])
def test_optim_inputs_match_the_spec(kwargs, desc, path):
    generator = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (7,), (0,)]
    params = [torch.randn(s, generator=generator, dtype=torch.float64).requires_grad_()
              for s in shapes]
    config = expected_config(kwargs)
    specs = [SpecParam(p, config) for p in params]
    grads = [[torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
             for _ in range(9)]
    grads[3][0] = torch.zeros(shapes[0], dtype=torch.float64)  # all-zero grad: a normal step
    grads[4][1] = None                                         # None: param skipped
    optimizer = RAdam(params, **kwargs, **PATHS[path])
    run_against_spec(optimizer, params, specs, grads,
                     exact=_spec_order_is_exact(kwargs, path), label=desc)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), path=st.sampled_from(["single", "fused", "capturable"]))
def test_spec_order_is_bit_identical_to_the_spec(problem, path):
    """All profiles (with the spec's operation order), drawn axes, hyperparameters,
    thresholds on a step's ρ_t, shapes, layouts, dtypes, groups, None/zero grads.
    The fused path is checked within the rounding bound (its sqrt is IEEE, torch's
    is not always), the others bit for bit."""
    optimizer, params, specs, grads = build(problem, PATHS[path], force={"op_order": "spec"})
    if path == "fused" and not all(p.is_contiguous() for p in params):
        optimizer = rebuilt_on_default_path(optimizer)
    run_against_spec(optimizer, params, specs, grads, exact=(path != "fused"),
                     label=f"path {path}")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(), path=st.sampled_from(["single", "foreach", "fused", "capturable"]))
def test_every_order_and_path_is_within_rounding_of_the_spec(problem, path):
    """Each profile's own operation order (torch's for the torch profiles) on every path."""
    optimizer, params, specs, grads = build(problem, PATHS[path])
    if path == "fused" and not all(p.is_contiguous() for p in params):
        optimizer = rebuilt_on_default_path(optimizer)
    run_against_spec(optimizer, params, specs, grads, exact=False, label=f"path {path}")


# --------------------------------------------------------------------------- #
# Fast paths against the single-tensor path (params and state, float64)
# --------------------------------------------------------------------------- #


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(dtypes=(torch.float64,)),
       fast=st.sampled_from(["foreach", "fused", "default"]),
       op_order=st.sampled_from(["spec", "torch"]))
def test_fast_paths_match_the_single_tensor_path(problem, fast, op_order):
    steps, dtype, groups, kinds, seed = problem
    if op_order == "torch":  # the torch order exists for eps before bias correction only
        groups = [({**o, "eps_placement": "before_bias_correction", "eps_root": 0.0,
                    "nesterov": False}, t) for o, t in groups]
    problem = (steps, dtype, groups, kinds, seed)
    single, p_single, _, grads = build(problem, PATHS["single"], force={"op_order": op_order})
    other, p_other, _, _ = build(problem, PATHS[fast], force={"op_order": op_order})
    exact_here = False  # the fused kernel's per-step bound: test_backend_torch_adversarial
    if fast == "fused" and not all(p.is_contiguous() for p in p_other):
        other = rebuilt_on_default_path(other)
        exact_here = False
    configs = [expected_config({**o, "op_order": op_order}) for o, ts in groups for _ in ts]
    for step_index, step_grads in enumerate(grads):
        with torch.no_grad():  # start each step from the single-tensor path's state
            for a, b in zip(p_single, p_other):
                b.copy_(a)
                if a in single.state:
                    other.state[b] = {k: v.clone() for k, v in single.state[a].items()}
        before = [(p.detach().clone(), copy.deepcopy(single.state.get(p))) for p in p_single]
        set_grads(p_single, step_grads)
        set_grads(p_other, step_grads)
        single.step()
        other.step()
        for i, (a, b, g, config) in enumerate(zip(p_single, p_other, step_grads, configs)):
            if g is None:
                continue
            sa, sb = single.state[a], other.state[b]
            where = f"{fast} vs single, {op_order} order, step {step_index + 1}, param {i}"
            assert int(sa["step"]) == int(sb["step"]), where
            pairs = [("θ", b.detach(), a.detach()), ("m", sb["exp_avg"], sa["exp_avg"]),
                     ("v", sb["exp_avg_sq"], sa["exp_avg_sq"])]
            if exact_here:
                for name, x, y in pairs:
                    assert_exact(x, y, f"{where}: {name}")
                continue
            p0, old = before[i]
            m0 = old["exp_avg"] if old else torch.zeros_like(p0)
            v0 = old["exp_avg_sq"] if old else torch.zeros_like(p0)
            mag_m, mag_v, mag_p = magnitudes(config, int(sa["step"]), p0, g, m0, v0,
                                             sa["exp_avg_sq"])
            for (name, x, y), mag in zip(pairs, (mag_p, mag_m, mag_v)):
                assert_within(x, y, mag, dtype, f"{where}: {name}", ulps=8.0)


# --------------------------------------------------------------------------- #
# torch.optim.RAdam parity
# --------------------------------------------------------------------------- #


def torch_scalars(t: int, beta1: float, beta2: float) -> HostScalars:
    """The step scalars exactly as torch.optim.RAdam's single-tensor path computes
    them in float64 (transcribed from torch/optim/radam.py)."""
    bias_correction1 = 1 - beta1 ** t
    bias_correction2 = 1 - beta2 ** t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * (beta2 ** t) / bias_correction2
    rectified = rho_t > 5.0
    rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
    return HostScalars(t=t, bias_correction1=bias_correction1, bias_correction1_next=1.0,
                       bias_correction2=bias_correction2, rectified=rectified,
                       r_t=rect if rectified else 0.0, moves=True, decays=False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("decoupled", [False, True])
def test_torch_order_is_torch_bit_for_bit_given_torch_scalars(decoupled, maximize, dtype):
    """The torch operation order reproduces torch.optim.RAdam exactly: fed torch's
    own step scalars, θ, exp_avg and exp_avg_sq agree bit for bit at every step."""
    generator = torch.Generator().manual_seed(1)
    shapes = [(13, 7), (31,)]
    ref = [torch.randn(s, generator=generator, dtype=dtype).requires_grad_() for s in shapes]
    ours = [p.detach().clone() for p in ref]
    states = [(torch.zeros_like(p), torch.zeros_like(p)) for p in ours]
    lr, wd, betas = 0.02, 0.1, (0.9, 0.999)
    reference = torch.optim.RAdam(ref, lr=lr, betas=betas, weight_decay=wd, maximize=maximize,
                                  decoupled_weight_decay=decoupled, foreach=False)
    config = RAdamConfig.from_profile("torch_decoupled" if decoupled else "torch", lr=lr,
                                      betas=betas, weight_decay=wd, maximize=maximize)
    for t in range(1, 16):
        grads = [torch.randn(s, generator=generator, dtype=dtype) for s in shapes]
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        reference.step()
        s = torch_scalars(t, *betas)
        s = HostScalars(**{**{f: getattr(s, f) for f in HostScalars.__slots__},
                           "decays": decoupled})
        for p, g, (m, v) in zip(ours, grads, states):
            update_single(p, g.clone(), m, v, s, config, lr=lr, op_order="torch")
        for p, q, (m, v) in zip(ref, ours, states):
            state = reference.state[p]
            assert_exact(q, p.detach(), f"θ at t={t}")
            assert_exact(m, state["exp_avg"], f"exp_avg at t={t}")
            assert_exact(v, state["exp_avg_sq"], f"exp_avg_sq at t={t}")


@pytest.mark.parametrize("decoupled", [False, True])
def test_profile_torch_matches_torch_up_to_torchs_scalar_rounding(decoupled):
    """With the spec's exact scalars, θ differs from torch.optim.RAdam by at most one
    ulp plus the effect of torch's float64 rounding of r_t·sqrt(1−β₂ᵗ)/(1−β₁ᵗ)
    (ρ_t cancels catastrophically there: about 3e-12 relative at t = 7 for
    β₂ = 0.999); the state is bit-identical."""
    generator = torch.Generator().manual_seed(2)
    shapes = [(9, 4), (17,)]
    lr, wd, betas = 0.01, 0.1, (0.9, 0.999)
    ref = [torch.randn(s, generator=generator, dtype=torch.float64).requires_grad_()
           for s in shapes]
    ours = [p.detach().clone().requires_grad_() for p in ref]
    reference = torch.optim.RAdam(ref, lr=lr, betas=betas, weight_decay=wd,
                                  decoupled_weight_decay=decoupled, foreach=False)
    optimizer = RAdam(ours, lr=lr, betas=betas, weight_decay=wd, profile="torch",
                      decoupled_weight_decay=decoupled, foreach=False)
    for t in range(1, 40):
        with torch.no_grad():
            for p, q in zip(ref, ours):
                q.copy_(p)
        grads = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
        for p, q, g in zip(ref, ours, grads):
            p.grad, q.grad = g.clone(), g.clone()
        before = [p.detach().clone() for p in ref]
        reference.step()
        optimizer.step()
        torch_s, exact = torch_scalars(t, *betas), radam_ref.schedule(t, beta1=betas[0],
                                                                      beta2=betas[1], threshold=5.0)
        assert torch_s.rectified == exact.rectified
        if exact.rectified:
            factor_torch = torch_s.r_t * torch_s.bias_correction2 ** 0.5 / torch_s.bias_correction1
            factor_exact = exact.r_t * exact.bias_correction2 ** 0.5 / exact.bias_correction1
        else:
            factor_torch, factor_exact = 1 / torch_s.bias_correction1, 1 / exact.bias_correction1
        scalar_error = abs(factor_torch - factor_exact) / factor_exact
        for p, q, p0 in zip(ref, ours, before):
            assert_exact(optimizer.state[q]["exp_avg"], reference.state[p]["exp_avg"], "exp_avg")
            assert_exact(optimizer.state[q]["exp_avg_sq"], reference.state[p]["exp_avg_sq"],
                         "exp_avg_sq")
            update = (p.detach() - p0).abs()
            if decoupled:
                update = (p.detach() - p0 * (1 - lr * wd)).abs()
            ulp = torch.finfo(torch.float64).eps * p.detach().abs()
            allowed = ulp + 4 * scalar_error * update + 4 * torch.finfo(torch.float64).eps * update
            assert ((q.detach() - p.detach()).abs() <= allowed).all(), f"t={t}"


def test_torch_state_dict_loads_and_continues_like_torch():
    """A torch.optim.RAdam checkpoint resumes in RAdam(profile="torch") with the same
    state (step counts converted exactly to float64)."""
    generator = torch.Generator().manual_seed(3)
    p = torch.randn(6, generator=generator, dtype=torch.float64).requires_grad_()
    q = p.detach().clone().requires_grad_()
    reference = torch.optim.RAdam([p], lr=0.01)
    for _ in range(7):
        p.grad = torch.randn(6, generator=generator, dtype=torch.float64)
        reference.step()
    optimizer = RAdam([q], lr=0.01, profile="torch", foreach=False)
    optimizer.load_state_dict(copy.deepcopy(reference.state_dict()))
    state = optimizer.state[q]
    assert state["step"].dtype == torch.float64 and int(state["step"]) == 7
    assert torch.equal(state["exp_avg"], reference.state[p]["exp_avg"])
    assert state["exp_avg"] is not reference.state[p]["exp_avg"]


# --------------------------------------------------------------------------- #
# Optimizer mechanics
# --------------------------------------------------------------------------- #


def _trajectory_grads(shapes, steps, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=generator, dtype=dtype) for s in shapes]
            for _ in range(steps)]


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize(("kwargs", "desc"), OPTIM_INPUTS[:6], ids=[d for _, d in OPTIM_INPUTS[:6]])
def test_state_dict_round_trip_resumes_bit_identically(kwargs, desc, path):
    shapes = [(4, 3), (5,)]
    grads = _trajectory_grads(shapes, 12, seed=4)
    start = [torch.full(s, 0.5, dtype=torch.float64) for s in shapes]

    def fresh():
        params = [x.clone().requires_grad_() for x in start]
        return params, RAdam(params, **kwargs, **PATHS[path])

    params, optimizer = fresh()
    for step_grads in grads:
        set_grads(params, step_grads)
        optimizer.step()

    params2, optimizer2 = fresh()
    for step_grads in grads[:5]:
        set_grads(params2, step_grads)
        optimizer2.step()
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params2], "optim": optimizer2.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    params3, optimizer3 = fresh()
    with torch.no_grad():
        for p, value in zip(params3, saved["params"]):
            p.copy_(value)
    optimizer3.load_state_dict(saved["optim"])
    for step_grads in grads[5:]:
        set_grads(params3, step_grads)
        optimizer3.step()
    for a, b in zip(params, params3):
        assert_exact(b.detach(), a.detach(), "resumed θ")
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert_exact(optimizer3.state[b][key], optimizer.state[a][key], f"resumed {key}")


def test_state_dtype_survives_the_round_trip_without_rounding():
    p = torch.randn(8, dtype=torch.bfloat16).requires_grad_()
    optimizer = RAdam([p], state_dtype=torch.float32)
    for _ in range(3):
        p.grad = torch.randn(8, dtype=torch.bfloat16) / 3
        optimizer.step()
    saved = copy.deepcopy(optimizer.state_dict())
    q = p.detach().clone().requires_grad_()
    other = RAdam([q], state_dtype=torch.float32)
    other.load_state_dict(saved)
    assert other.state[q]["exp_avg"].dtype == torch.float32
    assert torch.equal(other.state[q]["exp_avg"], saved["state"][0]["exp_avg"])


@pytest.mark.parametrize("path", ["single", "fused", "foreach"])
def test_deepcopy_continues_like_the_original(path):
    shapes = [(3, 2), (4,)]
    params = [torch.ones(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    optimizer = RAdam(params, lr=0.1, weight_decay=0.1, **PATHS[path])
    grads = _trajectory_grads(shapes, 8, seed=5)
    for step_grads in grads[:3]:
        set_grads(params, step_grads)
        optimizer.step()
    clone = copy.deepcopy(optimizer)
    clone_params = clone.param_groups[0]["params"]
    assert all(a is not b for a, b in zip(params, clone_params))
    for step_grads in grads[3:]:
        set_grads(params, step_grads)
        set_grads(clone_params, step_grads)
        optimizer.step()
        clone.step()
    for a, b in zip(params, clone_params):
        assert_exact(b.detach(), a.detach(), "deep copy θ")


def test_closure_is_called_once_with_grad_enabled_and_its_loss_returned():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    optimizer = RAdam([w], lr=0.1)
    calls = []

    def closure():
        optimizer.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        calls.append(torch.is_grad_enabled())
        return loss

    loss = optimizer.step(closure)
    assert calls == [True]
    assert loss.item() == 5.0
    # Step 1 is never rectified: θ −= α·m̂ with m̂ = g = 2w.
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0]) - 0.1 * torch.tensor([2.0, -4.0]))


@pytest.mark.parametrize("path", sorted(PATHS))
def test_none_grads_skip_and_zero_grads_step(path):
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    optimizer = RAdam([a, b], lr=0.1, weight_decay=0.5, **PATHS[path])
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    optimizer.step()
    optimizer.zero_grad()
    assert a.grad is None
    b.grad = torch.zeros(3)
    a_before, b_before = a.detach().clone(), b.detach().clone()
    optimizer.step()
    assert torch.equal(a, a_before) and int(optimizer.state[a]["step"]) == 1
    assert int(optimizer.state[b]["step"]) == 2
    # A zero gradient is a normal step: decoupled decay (1 − αλ) and momentum still act.
    m = 0.9 * 0.1 * 1.0           # m_2 = β₁ m_1, m_1 = (1 − β₁)·1
    m_hat = m / (1 - 0.9 ** 2)
    expected = b_before * (1 - 0.1 * 0.5) - 0.1 * m_hat
    torch.testing.assert_close(b.detach(), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_maximize_is_minimizing_the_negated_gradient(path):
    shapes = [(4,), (2, 2)]
    grads = _trajectory_grads(shapes, 8, seed=6)
    up = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    down = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    o_up = RAdam(up, lr=0.1, maximize=True, **PATHS[path])
    o_down = RAdam(down, lr=0.1, **PATHS[path])
    for step_grads in grads:
        set_grads(up, step_grads)
        set_grads(down, [-g for g in step_grads])
        o_up.step()
        o_down.step()
    for a, b in zip(up, down):
        assert_exact(a.detach(), b.detach(), "maximize")


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_params_are_updated_as_real_pairs(path, dtype):
    generator = torch.Generator().manual_seed(7)
    z = torch.randn(5, generator=generator, dtype=dtype).requires_grad_()
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    o_z = RAdam([z], lr=0.05, weight_decay=0.1, **PATHS[path])
    o_r = RAdam([r], lr=0.05, weight_decay=0.1, **PATHS[path])
    for _ in range(8):
        g = torch.randn(5, generator=generator, dtype=dtype)
        z.grad, r.grad = g, torch.view_as_real(g).clone()
        o_z.step()
        o_r.step()
    assert_exact(torch.view_as_real(z.detach()), r.detach(), "complex θ")
    assert_exact(torch.view_as_real(o_z.state[z]["exp_avg_sq"]), o_r.state[r]["exp_avg_sq"],
                 "complex v")


@pytest.mark.parametrize("path", ["single", "foreach", "default"])
@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
def test_low_precision_params_with_float32_state(path, low):
    """bf16/fp16 θ with float32 state: float32 arithmetic, θ rounded once per step.
    Oracle: the spec in float32 on the widened θ, then rounding to the low dtype."""
    generator = torch.Generator().manual_seed(8)
    p = torch.randn(64, generator=generator).to(low).requires_grad_()
    optimizer = RAdam([p], lr=0.01, weight_decay=0.1, state_dtype=torch.float32, **PATHS[path])
    config = RAdamConfig(lr=0.01, weight_decay=0.1)
    theta, state = p.detach().float(), radam_ref.init(p.detach().float())
    for _ in range(8):
        g = torch.randn(64, generator=generator).to(low)
        p.grad = g
        optimizer.step()
        theta, state = radam_ref.step(theta, g.float(), state, config)
        theta = theta.to(low).float()
        assert optimizer.state[p]["exp_avg"].dtype == torch.float32
        if path == "single":
            assert_exact(p.detach(), theta.to(low), "low-precision θ")
            assert_exact(optimizer.state[p]["exp_avg_sq"], state.v, "float32 v")
        else:  # foreach folds the scalars: within an ulp of the low dtype
            torch.testing.assert_close(p.detach().float(), theta, rtol=torch.finfo(low).eps,
                                       atol=0)
        with torch.no_grad():
            p.copy_(theta.to(low))
            optimizer.state[p]["exp_avg"].copy_(state.m)
            optimizer.state[p]["exp_avg_sq"].copy_(state.v)


@pytest.mark.parametrize("path", ["single", "default"])
def test_lr_schedulers_are_honoured(path):
    shapes = [(3,)]
    grads = _trajectory_grads(shapes, 10, seed=9)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = RAdam([p], lr=0.1, op_order="spec", **PATHS[path])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    spec_p = torch.zeros(3, dtype=torch.float64)
    state = radam_ref.init(spec_p)
    for step_index, (g,) in enumerate(grads):
        p.grad = g.clone()
        optimizer.step()
        scheduler.step()
        lr = 0.1 * 0.5 ** (step_index // 3)
        spec_p, state = radam_ref.step(spec_p, g, state, RAdamConfig(lr=lr))
        assert_exact(p.detach(), spec_p, f"scheduled step {step_index + 1}")


def test_tensor_lr_equals_float_lr():
    grads = _trajectory_grads([(4,)], 8, seed=10)
    a = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    oa = RAdam([a], lr=torch.tensor(0.05, dtype=torch.float64), foreach=False)
    ob = RAdam([b], lr=0.05, foreach=False)
    for (g,) in grads:
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    assert_exact(a.detach(), b.detach(), "tensor lr")


def test_param_groups_keep_their_own_hyperparameters_and_profiles():
    grads = _trajectory_grads([(3,), (3,)], 8, seed=11)
    a = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer = RAdam([{"params": [a]}, {"params": [b], "lr": 0.3, "profile": "authors"}],
                      lr=0.1)
    c = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    optimizer.add_param_group({"params": [c], "betas": (0.5, 0.6)})
    expected = [SpecParam(a, RAdamConfig(lr=0.1)),
                SpecParam(b, RAdamConfig.from_profile("authors", lr=0.3)),
                SpecParam(c, RAdamConfig(lr=0.1, betas=(0.5, 0.6)))]
    for g_a, g_b in grads:
        set_grads([a, b, c], [g_a, g_b, g_a + g_b])
        optimizer.step()
        for p, spec, g in zip((a, b, c), expected, (g_a, g_b, g_a + g_b)):
            spec.step(g)
            assert_exact(p.detach(), spec.real, "group θ")


def test_functional_form_matches_the_optimizer():
    grads = _trajectory_grads([(5,)], 8, seed=12)
    p = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    optimizer = RAdam([p], lr=0.02, foreach=False)
    q = torch.zeros(5, dtype=torch.float64)
    m, v, step = torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64), \
        torch.tensor(0.0, dtype=torch.float64)
    config = RAdamConfig(lr=0.02)
    for (g,) in grads:
        p.grad = g.clone()
        optimizer.step()
        radam([q], [g], [m], [v], [step], config, foreach=False)
        assert_exact(q, p.detach(), "functional θ")
    assert int(step) == 8
    with pytest.raises(ValueError, match="same length"):
        radam([q], [], [m], [v], [step], config)


@needs_fused
@pytest.mark.parametrize("change", ["p.data", "exp_avg tensor", "state dict", "grad None",
                                    "strided grad", "load_state_dict", "step tensor",
                                    "state update", "plain state dict then update"])
def test_fused_pointer_cache_follows_every_replacement(change):
    """The fused path caches addresses across steps; whatever a user replaces
    between steps, it must update the tensors the optimizer now holds, exactly as
    the single-tensor path does."""
    shapes = [(6, 4), (9,), (3, 3)]
    grads = _trajectory_grads(shapes, 6, seed=19)

    def run(path_options):
        params = [torch.full(s, 0.25, dtype=torch.float64, requires_grad=True) for s in shapes]
        optimizer = RAdam(params, lr=0.1, weight_decay=0.1, **path_options)
        for step_index, step_grads in enumerate(grads):
            set_grads(params, step_grads)
            if step_index == 3:
                p = params[0]
                if change == "p.data":
                    p.data = p.data.clone() + 1.0
                elif change == "exp_avg tensor":
                    optimizer.state[p]["exp_avg"] = optimizer.state[p]["exp_avg"] * 0.5
                elif change == "state dict":
                    optimizer.state[p] = {k: v.clone() * 2 for k, v in optimizer.state[p].items()}
                elif change == "grad None":
                    p.grad = None
                elif change == "strided grad":
                    p.grad = step_grads[0].t().contiguous().t()
                elif change == "load_state_dict":
                    saved = copy.deepcopy(optimizer.state_dict())
                    saved["state"][1]["exp_avg"].mul_(3.0)
                    optimizer.load_state_dict(saved)
                elif change == "step tensor":
                    optimizer.state[p]["step"] = torch.tensor(10.0, dtype=torch.float64)
                elif change == "state update":
                    optimizer.state[p].update(exp_avg_sq=optimizer.state[p]["exp_avg_sq"] * 3)
                elif change == "plain state dict then update":
                    optimizer.state[p] = dict(optimizer.state[p])

            if change == "plain state dict then update" and step_index == 5:
                # an untracked dict mutated in place, after a step that cached it
                optimizer.state[params[0]]["exp_avg"] = optimizer.state[params[0]]["exp_avg"] * 0.25
            optimizer.step()
        return params, optimizer

    fused_params, fused = run({})
    single_params, single = run(PATHS["single"])
    assert isinstance(fused.__dict__.get("_fused_plans"), dict)
    for a, b in zip(fused_params, single_params):
        assert_exact(a.detach(), b.detach(), f"{change}: θ")
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert_exact(fused.state[a][key], single.state[b][key], f"{change}: {key}")


def test_a_parameter_listed_twice_is_stepped_twice_like_torch():
    """torch.optim steps a duplicated parameter twice (with a warning); so does every
    path here, and the fused kernel never updates the same memory from two threads."""
    results = []
    for options in ({"foreach": False}, {}):
        p = torch.ones(5, dtype=torch.float64, requires_grad=True)
        with pytest.warns(UserWarning, match="duplicate parameters"):
            optimizer = RAdam([p, p], lr=0.1, **options)
        p.grad = torch.full((5,), 0.5, dtype=torch.float64)
        optimizer.step()
        results.append((p.detach().clone(), int(optimizer.state[p]["step"])))
    assert results[0][1] == results[1][1] == 2
    assert_exact(results[1][0], results[0][0], "duplicated parameter")


# --------------------------------------------------------------------------- #
# Step scalars, capturable tables, differentiable mode
# --------------------------------------------------------------------------- #


def test_device_table_rows_are_the_exact_schedule():
    config = RAdamConfig(betas=(0.8, 0.999), threshold=5.0, comparison=">=", nesterov=True)
    table = _torch_scalars.schedule_table(config, "cpu")
    for t in (1, 2, 5, 6, 7, 100, _torch_scalars.TABLE_STEPS):
        s = config.schedule(t)
        d = _torch_scalars.device_scalars(config, table, torch.tensor(float(t)))
        assert d.bias_correction1.item() == s.bias_correction1
        assert d.bias_correction1_next.item() == config.schedule(t + 1).bias_correction1
        assert d.bias_correction2.item() == s.bias_correction2
        assert d.sqrt_bias_correction2.item() == s.bias_correction2 ** 0.5
        assert bool(d.rectified) == s.rectified
        assert d.r_t.item() == (s.r_t if s.rectified else 0.0)


@pytest.mark.parametrize("beta2", [0.999, 0.9999, 0.65])
def test_device_scalars_beyond_the_table_stay_float64_accurate(beta2):
    """Past the table the spec's array form is used in float64: a few ulp, never float32."""
    config = RAdamConfig(betas=(0.9, beta2))
    table = _torch_scalars.schedule_table(config, "cpu")
    for t in (_torch_scalars.TABLE_STEPS + 1, 5000, 10**6):
        s = config.schedule(t)
        d = _torch_scalars.device_scalars(config, table, torch.tensor(float(t)))
        assert d.bias_correction2.dtype == torch.float64
        assert bool(d.rectified) == s.rectified
        for got, want in ((d.bias_correction1, s.bias_correction1),
                          (d.bias_correction2, s.bias_correction2), (d.r_t, s.r_t)):
            assert abs(got.item() - want) <= 8 * 2.0 ** -52 * abs(want)


def test_capturable_beyond_the_table_matches_the_host_path(monkeypatch):
    monkeypatch.setattr(_torch_scalars, "TABLE_STEPS", 4)
    grads = _trajectory_grads([(6,)], 12, seed=13)
    a = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    oa, ob = RAdam([a], capturable=True, lr=0.1), RAdam([b], foreach=False, lr=0.1)
    for (g,) in grads:
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("capturable", [False, True])
def test_differentiating_through_steps_gives_finite_gradients(capturable):
    """Meta-gradients of a loss after 8 steps w.r.t. the initial θ and a tensor lr,
    through steps with ρ_t ≤ 2, ρ_t ∈ (2, 4] and rectified steps."""
    rhos = [radam_ref.schedule(t).rho_t for t in range(1, 9)]
    assert any(2 < r <= 4 for r in rhos) and any(r > 4 for r in rhos)
    theta0 = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64, requires_grad=True)
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    p = theta0.clone()
    optimizer = RAdam([p], lr=lr, differentiable=True, capturable=capturable, foreach=False)
    for t in range(8):
        loss = ((p - torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, p, create_graph=True)
        p.grad = grad
        optimizer.step()
    final = (p ** 2).sum()
    d_theta0, d_lr = torch.autograd.grad(final, (theta0, lr))
    assert torch.isfinite(d_theta0).all() and torch.isfinite(d_lr).all()
    assert d_lr.abs() > 0


def test_differentiable_step_passes_gradcheck_across_the_threshold():
    """The analytic derivative of three steps (t = 5, 6, 7 from a restored state:
    ρ_5 < 5 < ρ_6 under the torch threshold) agrees with finite differences."""
    generator = torch.Generator().manual_seed(14)
    grads = [torch.randn(3, generator=generator, dtype=torch.float64) for _ in range(3)]

    def three_steps(theta, m, v):
        p = theta.clone()
        optimizer = RAdam([p], lr=0.1, profile="torch", weight_decay=0.1,
                          differentiable=True, foreach=False)
        optimizer.state[p] = {"step": torch.tensor(4.0, dtype=torch.float64),
                              "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        for g in grads:
            p.grad = g
            optimizer.step()
        state = optimizer.state[p]
        return p, state["exp_avg"], state["exp_avg_sq"]

    inputs = (torch.randn(3, generator=generator, dtype=torch.float64).requires_grad_(),
              torch.randn(3, generator=generator, dtype=torch.float64).requires_grad_(),
              torch.rand(3, generator=generator, dtype=torch.float64).add(0.1).requires_grad_())
    assert torch.autograd.gradcheck(three_steps, inputs)


# --------------------------------------------------------------------------- #
# torch.compile
# --------------------------------------------------------------------------- #


def test_compiled_training_step_matches_eager_with_the_update_in_one_graph():
    """torch.compile of a step containing optimizer.step(): one graph holds the whole
    update (the host computes the exact scalars between graphs), no recompilation
    across steps, and the result is bit-identical to the eager single-tensor path."""
    import torch._dynamo

    torch._dynamo.reset()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def model():
        torch.manual_seed(15)
        return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(16))
    compiled_model, eager_model = model(), model()
    compiled_opt = RAdam(compiled_model.parameters(), lr=0.1, weight_decay=0.1)
    eager_opt = RAdam(eager_model.parameters(), lr=0.1, weight_decay=0.1, foreach=False)

    @torch.compile(backend=backend)
    def optimizer_step():
        compiled_opt.step()

    for _ in range(8):
        for m in (compiled_model, eager_model):
            m.zero_grad()
            m(x).square().mean().backward()
        optimizer_step()
        eager_opt.step()
    for a, b in zip(compiled_model.parameters(), eager_model.parameters()):
        assert_exact(a.detach(), b.detach(), "compiled θ")
    update_graphs = [g for g in graphs if any(n.target in (torch.sqrt, torch.ops.aten.sqrt.default)
                                              or str(n.target) == "sqrt" for n in g.graph.nodes)]
    assert len(graphs) == 1 and len(update_graphs) == 1


def test_functional_update_compiles_with_fullgraph():
    """The update itself, given the host scalars as tensors, has no graph break."""
    import torch._dynamo

    torch._dynamo.reset()
    config = RAdamConfig(weight_decay=0.1)
    params = [torch.randn(4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)]
    grads = [torch.randn_like(p) for p in params]
    states = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    scalars = _torch_scalars.device_scalars(
        config, _torch_scalars.schedule_table(config, "cpu"), torch.tensor(7.0))

    @torch.compile(backend="eager", fullgraph=True)
    def update(params, grads, states, scalars):
        for p, g, (m, v) in zip(params, grads, states):
            update_single(p, g, m, v, scalars, config, lr=0.01, op_order="spec")

    expected = [p.clone() for p in params]
    expected_states = [(m.clone(), v.clone()) for m, v in states]
    for p, g, (m, v) in zip(expected, grads, expected_states):
        update_single(p, g, m, v, _torch_scalars.host_scalars(config, 7), config, lr=0.01,
                      op_order="spec")
    update(params, grads, states, scalars)
    for p, q in zip(params, expected):
        assert_exact(p, q, "fullgraph update")


# --------------------------------------------------------------------------- #
# CUDA (skipped without a GPU)
# --------------------------------------------------------------------------- #

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
def test_cuda_graph_replay_of_a_capturable_step_matches_eager():
    """Capture optimizer.step() once in a CUDA graph, replay it for steps that cross
    the threshold, and compare with the eager single-tensor path bit for bit."""
    generator = torch.Generator().manual_seed(17)
    start = torch.randn(1000, generator=generator, dtype=torch.float64)
    grads = [torch.randn(1000, generator=generator, dtype=torch.float64) for _ in range(12)]
    p = start.cuda().requires_grad_()
    p.grad = torch.zeros_like(p)
    optimizer = RAdam([p], lr=0.01, weight_decay=0.1, capturable=True)
    q = start.cuda().requires_grad_()
    eager = RAdam([q], lr=0.01, weight_decay=0.1, foreach=False)
    static_grad = p.grad
    static_grad.copy_(grads[0].cuda())
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up step: creates state and the table
        optimizer.step()
    torch.cuda.current_stream().wait_stream(stream)
    q.grad = grads[0].cuda()
    eager.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        optimizer.step()
    for g in grads[1:]:
        static_grad.copy_(g.cuda())
        graph.replay()
        q.grad = g.cuda()
        eager.step()
        torch.cuda.synchronize()
        assert_exact(p.detach(), q.detach(), "CUDA graph replay θ")


@needs_cuda
@pytest.mark.parametrize("path", ["foreach", "single", "capturable"])
def test_cuda_paths_match_the_spec(path):
    generator = torch.Generator().manual_seed(18)
    params = [torch.randn(s, generator=generator, dtype=torch.float64).cuda().requires_grad_()
              for s in [(33, 7), (100,)]]
    config = expected_config({"weight_decay": 0.1})
    specs = [SpecParam(p, config) for p in params]
    grads = [[torch.randn(p.shape, generator=generator, dtype=torch.float64).cuda()
              for p in params] for _ in range(9)]
    optimizer = RAdam(params, weight_decay=0.1, **PATHS[path])
    run_against_spec(optimizer, params, specs, grads, exact=path != "foreach",
                     label=f"cuda {path}")
