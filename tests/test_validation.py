"""Bad input raises ValueError/TypeError naming the argument and carrying the bad
value, before anything is computed or written.

Each check matches the message against both the argument's name and ``repr`` of
the offending value (``re.escape``d), so a message that drops either fails.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import radam_ref
from radam_ref import NonFiniteGradientError, RAdamConfig, RAdamState


def names(*parts) -> str:
    """A regex requiring every part, in order, anywhere in the message."""
    return ".*".join(re.escape(p) for p in parts)


# --------------------------------------------------------------------------- #
# RAdamConfig
# --------------------------------------------------------------------------- #

bad_betas = st.one_of(
    st.floats(max_value=0.0, exclude_max=True, allow_nan=False),
    st.floats(min_value=1.0, allow_nan=False),
    st.just(math.nan),
)


@given(bad=bad_betas, index=st.integers(0, 1))
def test_beta_outside_unit_interval(bad, index):
    betas = [0.9, 0.999]
    betas[index] = bad
    with pytest.raises(ValueError, match=names(f"index {index}", repr(float(bad)))):
        RAdamConfig(betas=tuple(betas))
    name = ("beta1", "beta2")[index]
    with pytest.raises(ValueError, match=names(name, repr(float(bad)))):
        radam_ref.schedule(3, **{name: bad})
    with pytest.raises(ValueError, match=names(name, repr(float(bad)))):
        radam_ref.schedule_array(np.asarray(3), **{name: bad})


bad_nonnegatives = st.one_of(
    st.floats(max_value=0.0, exclude_max=True),
    st.sampled_from([math.inf, -math.inf, math.nan]),
)


@pytest.mark.parametrize("field,label", [("lr", "learning rate"), ("eps", "epsilon"),
                                         ("weight_decay", "weight_decay"),
                                         ("eps_root", "eps_root")])
@given(bad=bad_nonnegatives)
def test_negative_or_nonfinite_hyperparameters(field, label, bad):
    with pytest.raises(ValueError, match=names(label, repr(float(bad)))):
        RAdamConfig(**{field: bad})
    with pytest.raises(ValueError, match=names(label, repr(float(bad)))):
        RAdamConfig().replace(**{field: bad})
    with pytest.raises(ValueError, match=names(label, repr(float(bad)))):
        RAdamConfig.from_profile("torch", **{field: bad})


@pytest.mark.parametrize("field,label", [("lr", "learning rate"), ("eps", "epsilon"),
                                         ("weight_decay", "weight_decay"),
                                         ("threshold", "threshold")])
@pytest.mark.parametrize("bad", ["0.1", None, True, [0.1], 1j])
def test_non_real_hyperparameters(field, label, bad):
    with pytest.raises(TypeError, match=names(label, repr(bad))):
        RAdamConfig(**{field: bad})


@pytest.mark.parametrize("bad", [0.9, (0.9,), (0.9, 0.99, 0.999), "ab", None])
def test_betas_not_a_pair(bad):
    with pytest.raises(TypeError, match=names("betas", repr(bad))):
        RAdamConfig(betas=bad)


@given(bad=st.one_of(st.floats(max_value=4.0, exclude_max=True),
                     st.sampled_from([math.inf, math.nan])))
def test_threshold_below_four_or_nonfinite(bad):
    with pytest.raises(ValueError, match=names("threshold", repr(float(bad)))):
        RAdamConfig(threshold=bad)
    with pytest.raises(ValueError, match=names("threshold", repr(float(bad)))):
        radam_ref.schedule(3, threshold=bad)


@pytest.mark.parametrize("field,bad", [
    ("comparison", "<"), ("comparison", "gt"), ("eps_placement", "inside"),
    ("weight_decay_mode", "adamw"), ("before_rectification", "adam"),
    ("nonfinite", "ignore"), ("weight_decay_mode", None),
])
def test_unknown_option_values(field, bad):
    with pytest.raises(ValueError, match=names(field, repr(bad))):
        RAdamConfig(**{field: bad})


@pytest.mark.parametrize("bad", ["<", "=="])
def test_unknown_comparison_in_schedule(bad):
    with pytest.raises(ValueError, match=names("comparison", repr(bad))):
        radam_ref.schedule(3, comparison=bad)
    with pytest.raises(ValueError, match=names("comparison", repr(bad))):
        radam_ref.schedule_array(np.asarray(3), comparison=bad)


@pytest.mark.parametrize("flag", ["nesterov", "maximize"])
@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_flags_must_be_bool(flag, bad):
    with pytest.raises(TypeError, match=names(flag, repr(bad))):
        RAdamConfig(**{flag: bad})


def test_unknown_option_names():
    with pytest.raises(TypeError, match="momentum"):
        RAdamConfig(momentum=0.9)
    with pytest.raises(TypeError, match=names("unknown", "momentum")):
        RAdamConfig().replace(momentum=0.9)
    with pytest.raises(TypeError, match=names("unknown", "amsgrad")):
        RAdamConfig.from_profile("torch", amsgrad=True)


@pytest.mark.parametrize("bad", ["keras", "Torch", "", "paper "])
def test_unknown_profile(bad):
    with pytest.raises(ValueError, match=names("profile", repr(bad))):
        RAdamConfig.from_profile(bad)


@pytest.mark.parametrize("name", sorted(radam_ref.PROFILES))
def test_profile_argument_applies_the_profile(name):
    """RAdamConfig(profile=name) is the profile, not the paper's axes under its label."""
    cfg = RAdamConfig(profile=name)
    assert cfg == RAdamConfig.from_profile(name)
    for field, value in radam_ref.PROFILES[name].options.items():
        assert getattr(cfg, field) == (tuple(value) if isinstance(value, list) else value), field
    # An explicit field wins; the rest stay the profile's.
    cfg = RAdamConfig(profile=name, lr=0.25, threshold=4.0)
    assert (cfg.lr, cfg.threshold, cfg.profile) == (0.25, 4.0, name)
    assert cfg.comparison == radam_ref.PROFILES[name].options["comparison"]


def test_torch_profile_argument_is_torch_not_the_paper():
    cfg = RAdamConfig(profile="torch")
    assert (cfg.threshold, cfg.weight_decay_mode, cfg.decay_form) == (5.0, "l2", "multiply")
    assert RAdamConfig() == RAdamConfig(profile="paper")
    assert (RAdamConfig().threshold, RAdamConfig().weight_decay_mode) == (4.0, "decoupled")


@pytest.mark.parametrize("bad", ["bogus", "Torch", "", "paper "])
def test_unknown_profile_argument_is_an_error(bad):
    with pytest.raises(ValueError, match=names("Unknown profile", repr(bad))):
        RAdamConfig(profile=bad)
    with pytest.raises(TypeError, match=names("profile", "None")):
        RAdamConfig(profile=None)


def _config_warnings(**kwargs) -> list[str]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        RAdamConfig(**kwargs)
    assert all(issubclass(w.category, radam_ref.RAdamConfigWarning) for w in caught)
    return [str(w.message) for w in caught]


def test_config_warning_is_a_runtime_warning():
    assert issubclass(radam_ref.RAdamConfigWarning, RuntimeWarning)


@pytest.mark.parametrize("lr,wd,mode,warns", [
    (0.5, 2.0, "decoupled", True),          # α·λ = 1: θ(1 − αλ) = 0
    (1.0, 3.0, "decoupled_moving", True),   # α·λ = 3: the sign flips every step
    (0.5, 1.99, "decoupled", False),
    (0.5, 4.0, "l2", False),                # L2 decay does not multiply θ by 1 − αλ
    (0.5, 4.0, "none", False),
])
def test_decay_that_flips_the_sign_warns(lr, wd, mode, warns):
    got = _config_warnings(lr=lr, weight_decay=wd, weight_decay_mode=mode)
    assert bool([m for m in got if "flips its sign" in m]) == warns, got
    if warns:
        assert repr(lr * wd) in got[0]


@pytest.mark.parametrize("beta2,threshold,comparison,warns", [
    (0.999, 1999.0, ">", True),       # ρ∞ just below 1999 for the float β₂
    (0.9, 20.0, ">=", True),
    (0.9, 19.0, ">=", False),         # the float 0.9 is above 0.9: ρ∞ is a hair above 19
    (0.7, 6.0, ">", True),            # ρ∞ = 5.67 < 6, though > 4: 4 would rectify
    (0.7, 5.0, ">", False),           # ρ∞ = 5.67 > 5
    (0.9, 18.0, ">", False),
    (0.5, 4.0, ">", False),           # ρ∞ = 3: the paper's SGD degeneration, intended
    (0.6, 5.0, ">=", False),          # ρ∞ = 4 ≤ 4: never rectified whatever the threshold
    (0.0, 4.0, ">", False),
])
def test_threshold_above_rho_inf_warns_except_the_sgd_degeneration(beta2, threshold, comparison, warns):
    from fractions import Fraction

    rho_inf = 2 / (1 - Fraction(beta2)) - 1          # exact, from the float β₂
    assert (rho_inf > 4 and threshold >= rho_inf) == warns   # the rule, stated independently
    got = _config_warnings(betas=(0.9, beta2), threshold=threshold, comparison=comparison)
    assert bool([m for m in got if "never rectified" in m]) == warns, got


@pytest.mark.parametrize("lr,warns", [(1.0, False), (1.5, True), (100.0, True), (0.1, False)])
def test_huge_learning_rate_warns(lr, warns):
    got = _config_warnings(lr=lr, weight_decay=0.0)
    assert bool([m for m in got if "learning rate" in m]) == warns, got


def test_every_profile_is_warning_free():
    for name in radam_ref.PROFILES:
        assert _config_warnings(profile=name) == [], name


def test_config_is_frozen():
    cfg = RAdamConfig()
    with pytest.raises(AttributeError):
        cfg.lr = 1.0  # type: ignore[misc]
    assert cfg.lr == 1e-3


# --------------------------------------------------------------------------- #
# schedule(t)
# --------------------------------------------------------------------------- #


@given(bad=st.integers(max_value=0))
def test_step_number_not_positive(bad):
    with pytest.raises(ValueError, match=names("step t", repr(bad))):
        radam_ref.schedule(bad)


@pytest.mark.parametrize("bad", [True, False, 1.0, 2.5, "3", None, np.float64(2.0)])
def test_step_number_not_an_integer(bad):
    with pytest.raises(TypeError, match=names("step t", repr(bad))):
        radam_ref.schedule(bad)


def test_config_schedule_uses_the_same_checks():
    with pytest.raises(ValueError, match=names("step t", "0")):
        RAdamConfig().schedule(0)


# --------------------------------------------------------------------------- #
# step(): containers, arrays, namespaces, devices, counter
# --------------------------------------------------------------------------- #


def _ok(shape=(3,), dtype=np.float64):
    return np.arange(1, 1 + int(np.prod(shape)), dtype=dtype).reshape(shape) / 7


def _readonly(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _expect_nothing_written(fn, *arrays):
    copies = [np.array(a, copy=True) for a in arrays]
    fn()
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


def test_structure_mismatch():
    p = [_ok(), _ok()]
    state = radam_ref.init(p)
    with pytest.raises(ValueError, match=names("grads does not match params", "params is a list of 2",
                                               "grads is a list of 3")):
        radam_ref.step(p, [_ok(), _ok(), _ok()], state)
    with pytest.raises(ValueError, match=names("params is a list of 2", "grads is a tuple of 2")):
        radam_ref.step(p, (_ok(), _ok()), state)
    d = {"w": _ok(), "b": _ok()}
    with pytest.raises(ValueError, match=names("params is a dict with keys ['w', 'b']",
                                               "grads is a dict with keys ['w', 'bias']")):
        radam_ref.step(d, {"w": _ok(), "bias": _ok()}, radam_ref.init(d))
    other_state = radam_ref.init([_ok()])
    with pytest.raises(ValueError, match=names("state.m does not match params", "params is a list of 2",
                                               "state.m is a list of 1")):
        radam_ref.step(p, p, other_state)


def test_structure_mismatch_names_the_first_differing_node_on_both_sides():
    """The issue's case: a leaf on one side, a list on the other, at the same path."""
    p = [_ok(), {"w": _ok()}]
    g = [[_ok(), _ok()], {"w": _ok()}]
    with pytest.raises(ValueError) as info:
        radam_ref.step(p, g, radam_ref.init(p))
    assert str(info.value) == ("grads does not match params: params[0] is an array (numpy.ndarray), "
                               "grads[0] is a list of 2")
    g = [_ok(), {"w": (_ok(),)}]
    with pytest.raises(ValueError) as info:
        radam_ref.step(p, g, radam_ref.init(p))
    assert str(info.value) == ("grads does not match params: params[1]['w'] is an array (numpy.ndarray), "
                               "grads[1]['w'] is a tuple of 1")


def test_shape_mismatch():
    p = {"w": _ok((2, 3)), "b": _ok((3,))}
    g = {"w": _ok((3, 2)), "b": _ok((3,))}
    with pytest.raises(ValueError, match=names("grads['w']", "(3, 2)", "params['w']", "(2, 3)")):
        radam_ref.step(p, g, radam_ref.init(p))
    state = radam_ref.init({"w": _ok((2, 3)), "b": _ok((4,))})
    with pytest.raises(ValueError, match=names("state.m['b']", "(4,)", "(3,)")):
        radam_ref.step(p, p, state)


def test_dtype_mismatch():
    p = [_ok(dtype=np.float64)]
    g = [_ok(dtype=np.float32)]
    with pytest.raises(TypeError, match=names("grads[0]", "float32", "params[0]", "float64")):
        radam_ref.step(p, g, radam_ref.init(p))
    state = radam_ref.init([_ok(dtype=np.float32)])
    with pytest.raises(TypeError, match=names("state.m[0]", "float32")):
        radam_ref.step(p, p, state)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex128])
def test_non_real_floating_arrays(dtype):
    bad = np.ones(3, dtype=dtype)
    with pytest.raises(TypeError, match=names("params", "real floating", np.dtype(dtype).name)):
        radam_ref.init(bad)
    p = _ok()
    with pytest.raises(TypeError, match=names("grads", np.dtype(dtype).name)):
        radam_ref.step(p, bad, radam_ref.init(p))


@pytest.mark.parametrize("tree,path,value", [
    ({"w": [1.0, 2.0]}, "params['w'][0]", "1.0"),  # a list is a container, 1.0 its leaf
    (1.5, "params", "1.5"), ("x", "params", "'x'"), (None, "params", "None"),
    ([np.ones(2), 3], "params[1]", "3"),
])
def test_leaves_must_be_arrays(tree, path, value):
    with pytest.raises(TypeError, match=names(path, "must be an array", value)):
        radam_ref.init(tree)


def test_empty_params():
    with pytest.raises(ValueError, match=names("params", "no arrays")):
        radam_ref.init([])


def test_mixed_namespaces():
    torch = pytest.importorskip("torch")
    p = _ok()
    g = torch.asarray(_ok())
    with pytest.raises(TypeError, match=names("more than one namespace", "numpy", "torch")):
        radam_ref.step(p, g, radam_ref.init(p))


def test_mixed_devices():
    xps = pytest.importorskip("array_api_strict")
    p = xps.asarray(_ok(), device=xps.Device("device1"))
    g = xps.asarray(_ok())  # CPU_DEVICE
    with pytest.raises(ValueError, match=names("grads", "device", "CPU_DEVICE", "device1")):
        radam_ref.step(p, g, radam_ref.init(p))
    state = radam_ref.init(xps.asarray(_ok()))
    with pytest.raises(ValueError, match=names("state.m", "CPU_DEVICE", "device1")):
        radam_ref.step(p, p, state)


@given(bad=st.integers(max_value=-1))
def test_counter_negative(bad):
    p = _readonly(_ok())
    state = radam_ref.init(p)._replace(count=bad)
    with pytest.raises(ValueError, match=names("state.count", repr(bad))):
        radam_ref.step(p, p, state)


@pytest.mark.parametrize("bad", [True, False, 1.0, "2", None, 2.5])
def test_counter_not_an_integer(bad):
    p = _ok()
    state = radam_ref.init(p)._replace(count=bad)
    with pytest.raises(TypeError, match=names("state.count", repr(bad))):
        radam_ref.step(p, p, state)


@pytest.mark.parametrize("bad", [np.asarray(1.0), np.asarray([1, 2])])
def test_counter_array_not_a_0d_integer(bad):
    p = _ok()
    state = radam_ref.init(p)._replace(count=bad)
    with pytest.raises(TypeError, match=names("state.count", "0-d integer", str(bad.dtype))):
        radam_ref.step(p, p, state)


def test_wrong_state_and_config_types():
    p = _ok()
    with pytest.raises(TypeError, match=names("state", "RAdamState", "tuple")):
        radam_ref.step(p, p, (0, p, p))
    with pytest.raises(TypeError, match=names("config", "RAdamConfig", "{'lr': 0.1}")):
        radam_ref.step(p, p, radam_ref.init(p), {"lr": 0.1})
    with pytest.raises(TypeError, match=names("config", "RAdamConfig")):
        radam_ref.optax_transform("torch")


def test_optax_transform_update_needs_params():
    p = _ok()
    tx = radam_ref.optax_transform(RAdamConfig())
    with pytest.raises(ValueError, match=names("params", "None")):
        tx.update(p, radam_ref.init(p))


def test_failed_validation_writes_nothing():
    """Torch tensors are writable: a rejected call leaves every input as it was."""
    torch = pytest.importorskip("torch")
    p = [torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)]
    state = radam_ref.init(p)
    g = [torch.full((3,), 0.5, dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)]
    snapshots = [x.clone() for x in p + g + list(state.m) + list(state.v)]
    with pytest.raises(ValueError, match=names("grads[1]", "(4,)")):
        radam_ref.step(p, g, state)
    for x, snap in zip(p + g + list(state.m) + list(state.v), snapshots):
        assert torch.equal(x, snap)


# --------------------------------------------------------------------------- #
# nonfinite="raise"
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_raise_before_anything_changes(xp_case, bad):
    """The opt-in check raises NonFiniteGradientError (a ValueError) naming the leaf
    and the step, for every namespace; no input is written (read-only NumPy
    proves it; copies prove it for the others)."""
    _, to_array = xp_case
    from _spec_oracles import to_numpy

    cfg = RAdamConfig(nonfinite="raise")
    params = {"w": to_array(_ok()), "b": to_array(_ok((2,)))}
    state = radam_ref.init(params)
    good = {"w": to_array(_ok()), "b": to_array(_ok((2,)))}
    params, state = radam_ref.step(params, good, state, cfg)
    before = [to_numpy(x) for x in (params["w"], params["b"], state.m["w"], state.v["b"])]
    bad_g = np.array([0.5, bad])
    grads = {"w": to_array(_ok()), "b": to_array(bad_g)}
    with pytest.raises(NonFiniteGradientError, match=names("grads['b']", "non-finite", "step 2")):
        radam_ref.step(params, grads, state, cfg)
    assert issubclass(NonFiniteGradientError, ValueError)
    after = [to_numpy(x) for x in (params["w"], params["b"], state.m["w"], state.v["b"])]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert state.count == 1
    # The default policy propagates instead of raising.
    new_params, _ = radam_ref.step(params, grads, state, cfg.replace(nonfinite="propagate"))
    assert not np.isfinite(to_numpy(new_params["b"])[1])


def test_validation_of_state_from_init_roundtrip():
    """A state whose moments were built for other params is rejected, naming state.v."""
    p = _ok((3,))
    state = radam_ref.init(p)
    state = RAdamState(count=0, m=state.m, v=_ok((2,)))
    with pytest.raises(ValueError, match=names("state.v", "(2,)", "(3,)")):
        radam_ref.step(p, p, state)


# --------------------------------------------------------------------------- #
# Hostile values found by review
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("field", ["lr", "eps", "weight_decay", "threshold", "eps_root"])
def test_an_integer_too_large_for_a_float_is_a_value_error(field):
    with pytest.raises(ValueError, match="too large for a float"):
        RAdamConfig(**{field: 10 ** 400})
    with pytest.raises(ValueError, match="too large for a float"):
        RAdamConfig(betas=(0.9, 10 ** 400))


def test_negative_zero_is_stored_as_zero():
    config = RAdamConfig(lr=-0.0, weight_decay=-0.0, eps=-0.0, betas=(-0.0, 0.999))
    for value in (config.lr, config.weight_decay, config.eps, config.beta1):
        assert value == 0.0 and math.copysign(1.0, value) == 1.0


def test_option_values_are_stored_as_plain_strings():
    config = RAdamConfig(comparison=np.str_(">="), decay_form=np.str_("multiply"))
    assert type(config.comparison) is str and type(config.decay_form) is str
    assert config == RAdamConfig(comparison=">=", decay_form="multiply")


@pytest.mark.parametrize("build", [
    lambda: RAdamConfig(lr=2.0),
    lambda: RAdamConfig.from_profile("torch", lr=2.0),
    lambda: RAdamConfig().replace(lr=2.0),
    lambda: radam_ref.PROFILES["paper"].config().replace(lr=2.0, weight_decay=1.0),
])
def test_config_warnings_point_at_the_callers_line(build):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build()
    assert caught and all(w.filename == __file__ for w in caught), [(w.filename, w.lineno) for w in caught]


def test_dicts_with_the_same_keys_in_another_order_are_the_same_structure():
    """jax.grad returns dicts with sorted keys whatever the params' order (found by review)."""
    params = {"w": np.array([1.0, 2.0]), "b": np.array([0.5])}
    grads = {"b": np.array([0.25]), "w": np.array([0.5, -0.5])}
    new, state = radam_ref.step(params, grads, radam_ref.init(params), RAdamConfig(lr=0.1))
    same, _ = radam_ref.step([params["b"], params["w"]], [grads["b"], grads["w"]],
                             radam_ref.init([params["b"], params["w"]]), RAdamConfig(lr=0.1))
    assert list(new) == ["w", "b"] and list(state.m) == ["w", "b"]  # the params' order
    np.testing.assert_array_equal(new["b"], same[0])
    np.testing.assert_array_equal(new["w"], same[1])


def test_cyclic_or_absurdly_deep_containers_are_value_errors():
    cyclic: list = [np.ones(2)]
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="params: a list that contains itself"):
        radam_ref.init(cyclic)
    deep = np.ones(2)
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="params: containers nested deeper than 100 levels"):
        radam_ref.init(deep)
    shared = np.ones(2)
    fine = [shared, [shared]]  # the same leaf twice is no cycle
    radam_ref.init(fine)


def test_profiles_cannot_be_changed_from_outside():
    """A profile's options were a plain dict: writing to it changed RAdamConfig() everywhere."""
    import pickle

    paper = radam_ref.PROFILES["paper"]
    with pytest.raises(TypeError):
        paper.options["lr"] = 5.0
    assert RAdamConfig().lr == 1e-3
    assert pickle.loads(pickle.dumps(paper)) == paper
