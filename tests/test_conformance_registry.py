"""TARGET resolution: identity over spelling, third-party loading, file paths, and
the --kwargs rules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from radam_ref.conformance import TargetUnavailable, resolve_target
from radam_ref.conformance.adapters.registry import SUITE_KWARGS, check_kwargs


def _installed(package: str) -> bool:
    """Installed, whether or not its top-level import works (``import timm`` needs torchvision)."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


@pytest.mark.parametrize("spelling", [
    "torch.optim.RAdam", "torch.optim:RAdam", "torch.optim.radam:RAdam", "torch.optim.radam.RAdam",
    "timm.optim.RAdam", "timm.optim:RAdam",
])
def test_torch_radam_is_recognised_by_identity_whatever_the_spelling(spelling):
    torch = pytest.importorskip("torch")
    if spelling.startswith("timm") and not _installed("timm"):
        pytest.skip("timm is not installed")
    target = resolve_target(spelling)
    assert target.cls is torch.optim.RAdam
    assert target.profile == "torch"
    assert target.claimed_config() == resolve_target("torch.optim.RAdam").claimed_config()
    assert target.kwargs == {"foreach": False}


def test_a_known_object_passed_directly_gets_its_builtin_claim():
    torch = pytest.importorskip("torch")
    assert resolve_target(torch.optim.RAdam).profile == "torch"
    import radam_ref

    assert resolve_target(radam_ref.step).name == "radam_ref.step"


@pytest.mark.parametrize("spelling,builtin", [
    ("torch_optimizer:RAdam", "torch_optimizer.RAdam"),
    ("torch_optimizer.radam:RAdam", "torch_optimizer.RAdam"),
    ("pytorch_optimizer:RAdam", "pytorch_optimizer.RAdam"),
    ("pytorch_optimizer.optimizer.radam:RAdam", "pytorch_optimizer.RAdam"),
])
def test_third_party_classes_by_any_spelling_get_the_builtin_adapter(spelling, builtin):
    pytest.importorskip(spelling.split(".")[0].split(":")[0])
    target, reference = resolve_target(spelling), resolve_target(builtin)
    assert type(target) is type(reference) and target.cls is reference.cls
    assert target.profile == reference.profile and target.claimed_config() == reference.claimed_config()


def test_timm_radam_file_loads_without_importing_timm():
    """``import timm`` needs torchvision; the optimizer file must not."""
    pytest.importorskip("torch")
    if not _installed("timm"):
        pytest.skip("timm is not installed")
    code = textwrap.dedent("""
        import sys, torch
        from radam_ref.conformance import resolve_target
        t = resolve_target("timm.optim.RAdamLegacy")
        assert issubclass(t.cls, torch.optim.Optimizer) and t.cls.__name__ == "RAdamLegacy"
        assert t.profile == "timm"
        assert "timm" not in sys.modules and "torchvision" not in sys.modules, sorted(sys.modules)
        from radam_ref.conformance.adapters.third_party import timm_radam_is_torch
        assert timm_radam_is_torch()
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_the_authors_builtin_says_how_to_provide_the_file(monkeypatch):
    monkeypatch.delenv("RADAM_REF_AUTHORS_FILE", raising=False)
    for name in ("authors.RAdam", "authors.PlainRAdam"):
        with pytest.raises(TargetUnavailable, match="set RADAM_REF_AUTHORS_FILE to the path of radam.py"):
            resolve_target(name)
    monkeypatch.setenv("RADAM_REF_AUTHORS_FILE", "/no/such/radam.py")
    with pytest.raises(TargetUnavailable, match="is not a file"):
        resolve_target("authors.RAdam")


def test_file_path_targets(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "my_radam.py").write_text(textwrap.dedent("""
        import torch

        class MyRAdam(torch.optim.RAdam):
            pass
    """))
    monkeypatch.chdir(tmp_path)
    target = resolve_target("my_radam.py:MyRAdam")
    assert target.cls.__name__ == "MyRAdam" and target.name == "my_radam.py:MyRAdam"
    assert target.spec[0] == os.path.join(str(tmp_path), "my_radam.py") + ":MyRAdam"  # replayable anywhere
    with pytest.raises(TargetUnavailable, match="no file"):
        resolve_target("missing.py:RAdam")
    with pytest.raises(TargetUnavailable, match="has no attribute 'Nope'"):
        resolve_target("my_radam.py:Nope")


def test_the_authors_file_given_by_path_claims_the_authors_profile():
    pytest.importorskip("torch")
    path = os.environ.get("RADAM_REF_AUTHORS_FILE")
    if not path:
        pytest.skip("RADAM_REF_AUTHORS_FILE is not set: point it at radam.py of LiyuanLucasLiu/RAdam "
                    "(not shipped with this project) to test the authors' code")
    for attr in ("RAdam", "PlainRAdam"):
        target = resolve_target(f"{path}:{attr}")
        assert target.profile == "authors" and target.tunable == {"before_rectification"}
        assert resolve_target(f"authors.{attr}").cls is target.cls


@pytest.mark.parametrize("kwargs", [{"foreach": True}, {"x64": True}, {"jit": True}, {"capturable": False},
                                    {"differentiable": False}, {"fixed_decay": False}, {}])
def test_code_path_kwargs_pass(kwargs):
    assert check_kwargs(kwargs) is None


def test_every_suite_key_is_refused_with_the_option_that_covers_it():
    for key, covered in SUITE_KWARGS.items():
        message = check_kwargs({key: 1, "foreach": True})
        assert message is not None and f"{key!r} is {covered}" in message
        assert "--profile" in covered or "--check" in covered
    assert "'lr'" in check_kwargs({"lr": 0.1, "eps": 1e-8}) and "'eps'" in check_kwargs({"lr": 0.1, "eps": 1e-8})


_KERAS_CLASSIFY = r"""
import sys
from radam_ref.conformance.adapters.registry import resolve_target
from radam_ref.conformance.adapters.keras_optimizer import KerasOptimizerTarget
out = []
for spelling in sys.argv[1:]:
    t = resolve_target(spelling)
    assert isinstance(t, KerasOptimizerTarget), (spelling, type(t))
    out.append(f"{spelling} {t.cls.__module__}.{t.cls.__name__} {t.backend} {t.default_dtype}")
print("\n".join(out))
"""


def test_a_keras_optimizer_class_by_module_attr_gets_the_keras_adapter():
    """``module:attr`` naming a Keras optimizer class goes to the Keras adapter, with no
    --kwargs, on the backend the built-in Keras target would choose (Keras fixes its backend
    on first import, so the choice must come before the target's module is imported).  In a
    child process: one Keras backend per process."""
    pytest.importorskip("keras")
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, "-c", _KERAS_CLASSIFY, "radam_ref.backends.keras:RAdam",
                             "keras.optimizers:Adam", "keras.optimizers.Adam"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    assert lines[0] == "radam_ref.backends.keras:RAdam radam_ref.backends.keras.RAdam jax float64"
    assert lines[1].startswith("keras.optimizers:Adam keras") and lines[1].endswith("Adam jax float64")
    assert lines[2] == lines[1].replace("keras.optimizers:Adam", "keras.optimizers.Adam", 1)
