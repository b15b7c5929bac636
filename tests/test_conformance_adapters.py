"""Targets and adapters: resolution of TARGET strings, the documented adapter
protocol, JAX x64 isolation, and the pytest mode."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from radam_ref import RAdamConfig
from radam_ref.conformance import (
    BUILTIN_TARGETS,
    Group,
    NotSupported,
    Scenario,
    Target,
    TargetUnavailable,
    resolve_target,
    run_conformance,
)
from radam_ref.conformance.adapters.optax_pair import OptaxTarget
from radam_ref.conformance.adapters.step_fn import StepFunctionTarget
from radam_ref.conformance.adapters.torch_optim import TorchOptimizerTarget
from radam_ref.conformance.compare import observe

ROOT = pathlib.Path(__file__).parent.parent


def test_builtin_names_resolve_with_their_claimed_profiles():
    expected = {"radam_ref.step": "paper", "radam_ref.optax_transform": "paper",
                "radam_ref.backends.numpy": "paper", "radam_ref.backends.torch": "paper",
                "torch.optim.RAdam": "torch", "optax.radam": "optax"}
    expected.update({"timm.optim.RAdam": "torch", "timm.optim.RAdamLegacy": "timm", "torch_optimizer.RAdam": "timm",
                     "pytorch_optimizer.RAdam": "authors", "authors.RAdam": "authors",
                     "authors.PlainRAdam": "authors"})
    assert set(expected) <= set(BUILTIN_TARGETS)
    for name, profile in expected.items():
        try:
            target = resolve_target(name)
        except TargetUnavailable:
            continue
        assert target.profile == profile
    pytest.importorskip("torch")
    assert resolve_target("torch.optim.RAdam", {"decoupled_weight_decay": True}).profile == "torch_decoupled"
    assert resolve_target("torch.optim.RAdam", profile="paper").profile == "paper"


def test_module_attr_targets_are_classified():
    pytest.importorskip("torch")
    pytest.importorskip("optax")
    assert isinstance(resolve_target("torch.optim:RAdam"), TorchOptimizerTarget)
    assert isinstance(resolve_target("optax:radam"), OptaxTarget)
    step = resolve_target("radam_ref:step")
    assert isinstance(step, StepFunctionTarget) and not step.in_place
    assert resolve_target("radam_ref.backends.numpy:step_").in_place
    assert resolve_target("torch.optim:RAdam").tunable == {"maximize"}
    assert resolve_target("optax:radam").tunable == {"eps_root", "threshold", "nesterov"}


def test_unsupported_options_are_named():
    pytest.importorskip("torch")
    target = resolve_target("torch.optim.RAdam")
    assert target.unsupported(target.claimed_config()) == []
    assert target.unsupported(RAdamConfig.from_profile("torch", threshold=4.0)) == ["threshold=4.0"]
    assert target.unsupported(RAdamConfig.from_profile("torch", weight_decay=0.1,
                                                       weight_decay_mode="decoupled_moving")) == [
        "weight_decay_mode='decoupled_moving'"]


def _guide_adapter_namespace():
    text = (ROOT / "docs" / "conformance.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "conformance-guide: adapter" in b)
    namespace = {}
    exec(block, namespace)
    return namespace


def test_documented_adapter_example_conforms_and_reports_what_it_lacks():
    LoopRAdam = _guide_adapter_namespace()["LoopRAdam"]
    report = run_conformance(LoopRAdam(), max_examples=3, horizon=300, shrink_seconds=1.0)
    verdicts = {r.check: r.verdict for r in report.results}
    assert report.conforms, [(r.check, r.summary) for r in report.results if r.verdict == "fail"]
    for check in ("param_groups", "state_dict", "grad_none", "float32", "low_precision", "side_effects",
                  "autodiff", "complex"):
        assert verdicts[check] == "not supported", check
    for check in ("trajectories", "threshold", "degeneration", "eps_zero", "zero_grads", "long_horizon"):
        assert verdicts[check] in ("pass", "acceptable"), check
    assert report.fingerprint.profiles == ["paper"]


def test_documented_adapter_with_a_defect_fails():
    namespace = _guide_adapter_namespace()
    LoopRAdam, LoopSession = namespace["LoopRAdam"], namespace["LoopSession"]

    class NoDecaySession(LoopSession):
        def step(self, grads):  # forgets the weight decay
            told, self.c = self.c, self.c.replace(weight_decay=0.0)
            try:
                super().step(grads)
            finally:
                self.c = told

    class NoDecay(LoopRAdam):
        def open(self, groups, dtype):
            return NoDecaySession(groups[0])

    report = run_conformance(NoDecay(), checks=["weight_decay_modes"], fingerprint=False, max_examples=4)
    (result,) = report.results
    assert result.verdict == "fail"
    assert result.axis.startswith("weight decay: the target matches the spec with weight decay ignored")
    assert result.findings[0].cause == "weight_decay/ignored"


def test_optax_target_does_not_depend_on_the_global_x64_setting():
    jax = pytest.importorskip("jax")
    pytest.importorskip("optax")
    cfg = RAdamConfig.from_profile("optax", lr=0.5, betas=(0.9, 0.9999))
    sc = Scenario([Group([np.zeros(2)], cfg)], [[[np.array([1.0, -0.5])]] for _ in range(8)], dtype="float32")
    before = jax.config.jax_enable_x64
    runs = {}
    for global_x64 in (False, True):
        jax.config.update("jax_enable_x64", global_x64)
        try:
            for x64 in (False, True):
                values = observe(resolve_target("optax.radam", {"x64": x64}), sc).values
                runs[(global_x64, x64)] = np.array([v[0][0] for v in values])
            assert jax.config.jax_enable_x64 is global_x64
        finally:
            jax.config.update("jax_enable_x64", before)
    np.testing.assert_array_equal(runs[(False, False)], runs[(True, False)])
    np.testing.assert_array_equal(runs[(False, True)], runs[(True, True)])
    # and the two modes really differ: float32 step scalars at β₂ = 0.9999 rectify at t = 2
    assert not np.array_equal(runs[(False, False)], runs[(False, True)])


def test_target_protocol_defaults_report_not_supported():
    class Bare(Target):
        name = "bare"

    session_methods = ("add_group", "save", "restore", "last_inputs")
    from radam_ref.conformance import Session

    s = Session()
    for method in session_methods:
        with pytest.raises(NotSupported):
            getattr(s, method)(*([None] if method in ("add_group", "restore") else []))
    with pytest.raises(NotSupported):
        Bare().differentiate([], [], RAdamConfig(), "float64", [])


def _pytest_mode(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    env.pop("RADAM_TARGET", None) if not env_extra else None
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "radam_ref.conformance", "-q", "-p", "no:cacheprovider",
         "--radam-max-examples", "2", "--radam-horizon", "200", *args],
        capture_output=True, text=True, cwd=str(ROOT.parent), env=env, timeout=600,
    )


def test_pytest_mode_passes_a_conforming_target_and_names_a_failing_check(tmp_path):
    # A module:attr step function claims "paper"; this one follows timm's threshold (ρ_t >= 5),
    # so pytest mode, like the command line, must fingerprint it and check it against timm.
    (tmp_path / "pm_timm.py").write_text(textwrap.dedent('''
        import radam_ref
        def step(params, grads, state, config):
            return radam_ref.step(params, grads, state, config.replace(threshold=5.0, comparison=">="))
    '''))
    ok = _pytest_mode("--radam-target", "pm_timm:step", "-k", "threshold or param_groups or fingerprint",
                      env_extra={"PYTHONPATH": str(tmp_path)})
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert "2 passed, 1 skipped" in ok.stdout  # param_groups: not supported by a step function
    # which profile, and why: timm and torch_decoupled differ only where the probes cannot tell
    # (ρ_t = 5 exactly; θ − αλθ vs θ(1 − αλ)), so either may be named, with the claim's difference
    line = next(ln for ln in ok.stdout.splitlines() if ln.startswith("profile:"))
    assert "fingerprint matches" in line and "timm" in line and "differs in threshold" in line, line
    (tmp_path / "pm_broken.py").write_text(textwrap.dedent('''
        import radam_ref
        def step(params, grads, state, config):
            return radam_ref.step(params, grads, state, config.replace(maximize=not config.maximize))
    '''))
    bad = _pytest_mode("--radam-target", "pm_broken:step", "-k", "maximize or degeneration",
                       env_extra={"PYTHONPATH": str(tmp_path)})
    assert bad.returncode == 1
    assert "FAILED" in bad.stdout and "test_check[maximize]" in bad.stdout
    assert "most likely axis: maximize" in bad.stdout and "repro:" in bad.stdout
    assert "[profile: " in bad.stdout  # each failure says what it was checked against, and why


def test_pytest_mode_without_a_target_is_a_usage_error():
    result = _pytest_mode()
    assert result.returncode == 4
    assert "--radam-target" in result.stderr + result.stdout
