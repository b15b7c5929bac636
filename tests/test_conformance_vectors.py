"""Golden vectors: shipped files are valid and reproducible, the project's
implementations pass them, and corrupted files are caught."""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re

import pytest

from radam_ref import PROFILES
from radam_ref.conformance import resolve_target, vectors
from radam_ref.conformance.adapters.registry import TargetUnavailable
from radam_ref.conformance.schema import SchemaError, validate


def _schema():
    with open(vectors.schema_path()) as fh:
        return json.load(fh)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_shipped_file_is_valid_consistent_and_reproduced_by_the_generator(profile):
    assert vectors.validate_file(vectors.vector_path(profile)) == []


def test_vectors_stay_small():
    total = sum(os.path.getsize(vectors.vector_path(p)) for p in PROFILES)
    assert total < 1_000_000


def test_vectors_cover_every_flag_and_both_verdicts():
    data = vectors.load(vectors.vector_path("paper"))
    flags = {f for g in data["testGroups"] for t in g["tests"] for f in t["flags"]}
    assert flags == set(data["notes"])
    results = {t["result"] for g in data["testGroups"] for t in g["tests"]}
    assert results == {"valid", "acceptable"}
    assert {g["dtype"] for g in data["testGroups"]} == {"float64", "float32"}


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d["testGroups"][0]["tests"][0].pop("tcId"), "missing required property 'tcId'"),
    (lambda d: d.__setitem__("numberOfTests", 3), "numberOfTests"),
    (lambda d: d["testGroups"][0]["tests"][0]["expected"][0].__setitem__(0, "0x1.0p+0"), "differs from"),
    (lambda d: d["testGroups"][0]["tests"][0]["expected"][0].__setitem__(0, "1.0"), "does not match"),
    (lambda d: d["testGroups"][0]["tests"][0]["flags"].append("Unknown"), "has no note"),
])
def test_corrupted_files_are_caught(tmp_path, mutate, needle):
    data = vectors.load(vectors.vector_path("paper"))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    problems = vectors.validate_file(str(path))
    assert problems and needle in " ".join(problems)


def test_small_validator_agrees_with_jsonschema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = _schema()
    good = vectors.load(vectors.vector_path("torch"))
    jsonschema.validate(good, schema)
    validate(good, schema)
    bad = copy.deepcopy(good)
    bad["testGroups"][0]["dtype"] = "float16"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(SchemaError):
        validate(bad, schema)


#: Profiles that between them take every value of every axis (threshold 4/5, >/>=,
#: ε before/after, the four weight-decay modes, both behaviours before rectification).
AXIS_COVERING_PROFILES = ("paper", "authors", "torch", "optax")


@pytest.mark.parametrize("name", ["radam_ref.step", "radam_ref.backends.numpy", "radam_ref.backends.torch"])
def test_project_implementations_pass_the_vectors(name):
    try:
        target = resolve_target(name)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    profiles = PROFILES if name == "radam_ref.step" else AXIS_COVERING_PROFILES
    for profile in profiles:
        target.profile = profile
        results = vectors.check_target(target)
        assert results and all(r.ok for r in results), [(profile, r.tc_id, r.message) for r in results if not r.ok]


@pytest.mark.parametrize("name,kwargs,profile", [
    ("torch.optim.RAdam", {}, "torch"),
    ("torch.optim.RAdam", {"decoupled_weight_decay": True}, "torch_decoupled"),
    ("optax.radam", {"x64": True}, "optax"),
])
def test_third_party_implementations_pass_their_profile(name, kwargs, profile):
    try:
        target = resolve_target(name, kwargs)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    results = vectors.check_target(target)
    assert target.profile == profile
    assert all(r.ok is not False for r in results), [(r.tc_id, r.message) for r in results if r.ok is False]
    assert sum(r.ok is True for r in results) >= 20


def test_torch_foreach_fails_exactly_the_eps_zero_vectors():
    """The documented torch finding (foreach=True, ε = 0 → NaN on SGD steps) shows
    in the vectors too, and nothing else does."""
    try:
        target = resolve_target("torch.optim.RAdam", {"foreach": True})
    except TargetUnavailable as exc:
        pytest.skip(str(exc))
    data = vectors.load(vectors.vector_path("torch"))
    eps_zero = {t["tcId"] for g in data["testGroups"] for t in g["tests"] if "EpsZero" in t["flags"]}
    failed = {r.tc_id for r in vectors.check_target(target) if r.ok is False}
    assert failed == eps_zero


def _porting_guide_blocks():
    text = (pathlib.Path(__file__).parent.parent / "docs" / "porting.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    port = next(b for b in blocks if "# porting-guide: port" in b)
    check = next(b for b in blocks if "# porting-guide: check" in b)
    return port, check


def test_porting_guide_port_passes_the_vectors(capsys):
    port, check = _porting_guide_blocks()
    exec(port + check, {})
    assert "12 passed, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize("breakage,flag_text", [
    (("if rho > 4.0:", "if rho >= 5.0:"), "constant gradient through the first rectified step"),
    (("math.sqrt(v[i]) + eps", "math.sqrt(v[i] / bc2) * math.sqrt(bc2) + eps * math.sqrt(bc2)"),
     "small gradients"),
    (("p[i] = p[i] * (1.0 - lr * weight_decay)", "gi = gi + weight_decay * p[i]"), "weight decay 0.1"),
])
def test_porting_guide_catches_a_broken_port(breakage, flag_text, capsys):
    port, check = _porting_guide_blocks()
    old, new = breakage
    assert old in port
    exec(port.replace(old, new) + check, {})
    out = capsys.readouterr().out
    assert f"({flag_text}) FAILS" in out
    assert ", 0 failed" not in out
