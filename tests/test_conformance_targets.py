"""The built-in targets against their own profiles, in CI.

torch.optim.RAdam (foreach off and on, float64 and float32), optax.radam (x64 on
and off) and this project's own implementations.  Every finding against them is
either a real defect — listed in KNOWN_FINDINGS, shown with its repro on
docs/conformance-results.md — or a bug of the suite; so everything not listed
must pass (or be "not supported"), and everything listed must keep failing for
the documented reason.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from radam_ref.conformance import resolve_target, run_conformance
from radam_ref.conformance.adapters.registry import TargetUnavailable

EXAMPLES = max(3, settings.default.max_examples // 8)

#: (target, kwargs) -> {check: substring of the diagnosed axis or summary}
KNOWN_FINDINGS = {
    # a real defect of the foreach path (see formula/eps_zero_masked_nan in conformance/causes.py)
    ("torch.optim.RAdam", (("foreach", True),)): {"eps_zero": "turns NaN before rectification"},
    ("optax.radam", (("x64", True),)): {"autodiff": "nan", "complex": "complex convention"},
    ("optax.radam", ()): {
        "arithmetic": "step scalars (1 − βᵗ, ρ_t, r_t) computed in float32",
        "autodiff": "nan",
        "complex": "complex convention",
    },
}
#: Checks of optax without x64 that fail whenever their drawn inputs reach β₂ near 1 —
#: for the same documented reason, so a failure must name that axis.
FLOAT32_SCALARS_AXIS = "step-scalar arithmetic"

CASES = [
    ("torch.optim.RAdam", {"foreach": False}, "float64", 10_000),
    ("torch.optim.RAdam", {"foreach": False}, "float32", 10_000),
    ("torch.optim.RAdam", {"foreach": True}, "float64", 10_000),
    ("torch.optim.RAdam", {"foreach": True}, "float32", 10_000),
    ("torch.optim.RAdam", {"foreach": False, "decoupled_weight_decay": True}, "float64", 2_000),
    ("optax.radam", {"x64": True}, "float64", 10_000),
    ("optax.radam", {}, "float32", 10_000),
    ("radam_ref.step", {}, "float64", 3_000),
    ("radam_ref.step", {}, "float32", 2_000),
    ("radam_ref.optax_transform", {}, "float32", 300),
    ("radam_ref.backends.numpy", {}, "float64", 1_000),
    ("radam_ref.backends.torch", {}, "float64", 1_000),
]


def _run(name, kwargs, dtype, horizon):
    known = KNOWN_FINDINGS.get((name, tuple(sorted(kwargs.items()))), {})
    try:
        return run_conformance(name, kwargs, dtype=dtype, max_examples=EXAMPLES, horizon=horizon,
                               shrink_seconds=0.5 if known else 2.0)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name,kwargs,dtype,horizon", CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}-{d}"
                              for n, kw, d, _ in CASES])
def test_builtin_target_against_its_own_profile(name, kwargs, dtype, horizon):
    report = _run(name, kwargs, dtype, horizon)
    known = KNOWN_FINDINGS.get((name, tuple(sorted(kwargs.items()))), {})
    unexpected = []
    for result in report.results:
        assert result.verdict != "error", (result.check, result.summary, result.notes)
        if result.check in known:
            assert result.verdict == "fail", (result.check, "documented finding no longer found")
            text = f"{result.axis} {result.summary}".lower()
            assert known[result.check].lower() in text, (result.check, result.axis, result.summary)
            assert result.repro and result.mismatch is not None
            continue
        if result.verdict == "fail":
            if name == "optax.radam" and not kwargs.get("x64") and FLOAT32_SCALARS_AXIS in (result.axis or ""):
                continue
            unexpected.append((result.check, result.summary, result.axis))
    assert not unexpected, unexpected
    if name.startswith("radam_ref"):
        assert report.conforms
    fp = report.fingerprint
    if not (name == "optax.radam" and not kwargs.get("x64")):
        assert fp.consistent and report.profile in fp.profiles, fp.summary()


# --------------------------------------------------------------------------- #
# third-party targets: the configuration each option combination claims
# --------------------------------------------------------------------------- #

def _spec_run(config, p0, grads):
    import numpy as np

    import radam_ref

    params = [np.array(p0)]
    state = radam_ref.init(params)
    for g in grads:
        params, state = radam_ref.step(params, [np.array(g)], state, config)
    return np.asarray(params[0])


def _torch_run(cls, p0, grads, **kwargs):
    import torch

    p = torch.tensor(p0, dtype=torch.float64)
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy().copy()


def _stream(steps=14, seed=3):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.array([0.5, -1.5, 2.0]), [rng.normal(size=3) for _ in range(steps)]


@pytest.mark.parametrize("weight_decouple", [True, False])
@pytest.mark.parametrize("degenerated_to_sgd", [True, False])
@pytest.mark.parametrize("n_sma_threshold", [4, 5])
@pytest.mark.parametrize("maximize", [False, True])
def test_pytorch_optimizer_options_claim_the_configuration_they_follow(weight_decouple, degenerated_to_sgd,
                                                                       n_sma_threshold, maximize):
    """Each option combination of pytorch_optimizer.RAdam, run directly, follows the
    spec configuration the adapter claims for it (the spec computes it), and the
    adapter expresses that configuration with the same options."""
    import numpy as np

    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    from radam_ref.conformance.adapters.third_party import pytorch_optimizer_config, pytorch_optimizer_options

    hyper = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    options = dict(weight_decouple=weight_decouple, degenerated_to_sgd=degenerated_to_sgd,
                   n_sma_threshold=n_sma_threshold, maximize=maximize)
    config = pytorch_optimizer_config(options, **hyper)
    assert config.threshold == n_sma_threshold and config.comparison == ">="
    assert config.before_rectification == ("sgd_momentum" if degenerated_to_sgd else "none")
    expected_mode = "l2" if not weight_decouple else ("decoupled" if degenerated_to_sgd else "decoupled_moving")
    assert config.weight_decay_mode == expected_mode
    assert pytorch_optimizer_options(config) == {**options, "fixed_decay": False}
    p0, grads = _stream()
    got = _torch_run(pytorch_optimizer.RAdam, p0, grads, foreach=False, **hyper, **options)
    if weight_decouple:
        np.testing.assert_allclose(got, _spec_run(config, p0, grads), rtol=1e-12, atol=0)
    else:
        # A real defect, claimed correctly: with weight_decouple=False the documented L2
        # decay (added to the gradient) is dropped; the step is the one without decay.
        assert not np.allclose(got, _spec_run(config, p0, grads), rtol=1e-9, atol=0)
        np.testing.assert_allclose(got, _spec_run(config.replace(weight_decay_mode="none"), p0, grads),
                                   rtol=1e-12, atol=0)


def test_pytorch_optimizer_fixed_decay_has_no_spec_equivalent():
    from radam_ref.conformance.adapters.third_party import pytorch_optimizer_config

    assert pytorch_optimizer_config({"fixed_decay": True}, weight_decay=0.1) is None
    assert pytorch_optimizer_config({"fixed_decay": True}, weight_decay=0.0) is not None


@pytest.mark.parametrize("name,profile", [("timm.optim.RAdamLegacy", "timm"), ("torch_optimizer.RAdam", "timm")])
def test_timm_legacy_and_torch_optimizer_follow_the_timm_profile(name, profile):
    """Run directly with decay, in float32 (they compute in float32), against the
    spec configuration of the profile they claim."""
    import numpy as np

    pytest.importorskip("torch")
    from radam_ref import PROFILES

    try:
        target = resolve_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    assert target.profile == profile
    hyper = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    p0, grads = _stream()
    got = _torch_run(target.cls, p0, grads, **hyper)
    want = _spec_run(PROFILES[profile].config(**hyper), p0, grads)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)  # float32 arithmetic inside


def test_the_authors_file_follows_the_authors_profile():
    import os

    import numpy as np

    pytest.importorskip("torch")
    path = os.environ.get("RADAM_REF_AUTHORS_FILE")
    if not path:
        pytest.skip("RADAM_REF_AUTHORS_FILE is not set: point it at radam.py of LiyuanLucasLiu/RAdam "
                    "(not shipped with this project) to test the authors' code")
    from radam_ref import PROFILES

    hyper = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    p0, grads = _stream()
    for attr in ("RAdam", "PlainRAdam"):
        for sgd in (False, True):
            target = resolve_target(f"{path}:{attr}")
            assert target.profile == "authors" and target.name == f"{path}:{attr}"
            config = PROFILES["authors"].config(**hyper, before_rectification="sgd_momentum" if sgd else "none",
                                                 weight_decay_mode="decoupled" if sgd else "decoupled_moving")
            assert target.unsupported(config) == []
            got = _torch_run(target.cls, p0, grads, **hyper, **target.options(config))
            np.testing.assert_allclose(got, _spec_run(config, p0, grads), rtol=1e-5, atol=0)


def test_pytorch_optimizer_claims_the_decay_it_applies_and_keeps_a_code_path_option():
    """Its default λ is 0, but given λ it decays decoupled on the steps that move θ: that is
    the claim (a claim of mode "none" would leave the decay probes without decay).  A
    ``fixed_decay=True`` from --kwargs reaches every param group (a group's own False would
    silently win), and since θ(1 − λ) has no spec equivalent the fingerprint pins every
    other axis and leaves weight decay alone unexplained."""
    pytest.importorskip("pytorch_optimizer")
    from radam_ref.conformance.fingerprint import fingerprint

    assert resolve_target("pytorch_optimizer.RAdam").claimed_config().weight_decay_mode == "decoupled_moving"
    target = resolve_target("pytorch_optimizer.RAdam", {"fixed_decay": True})
    claim = target.claimed_config()
    assert target.group_kwargs(claim.replace(weight_decay=0.1))["fixed_decay"] is True
    fp = fingerprint(target, claim, "float64", precision=False)
    assert not fp.consistent and fp.axes["weight_decay_mode"] == ()
    assert fp.closest == {"threshold": 5.0, "eps_placement": "before_bias_correction",
                          "weight_decay_mode": "decoupled_moving", "before_rectification": "none", "nesterov": False}
