"""`radam-ref conformance`: exit statuses, messages, JSON, repros, --all and the results page."""

from __future__ import annotations

import json
import textwrap

import pytest

from radam_ref.cli import main

BROKEN_MODULE = '''
import radam_ref

def step(params, grads, state, config):
    """The spec with the threshold forced to 5 (claims the paper's 4)."""
    return radam_ref.step(params, grads, state, config.replace(threshold=5.0))
'''


@pytest.fixture
def broken_module(tmp_path, monkeypatch):
    (tmp_path / "conf_broken_mod.py").write_text(textwrap.dedent(BROKEN_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "conf_broken_mod:step"


def test_conforming_target_exits_0_and_writes_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    rc = main(["conformance", "radam_ref.step", "--check", "threshold", "--check", "degeneration",
               "--max-examples", "2", "--json", str(out), "--no-progress"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["verdict"] == "conforms"
    assert [c["check"] for c in data["checks"]] == ["threshold", "degeneration"]
    assert {c["verdict"] for c in data["checks"]} == {"pass"}
    assert data["fingerprint"]["profiles"] == ["paper"]
    assert "radam_ref.step: conforms" in capsys.readouterr().out


def test_failing_target_exits_1_with_step_axis_and_a_repro_that_reproduces(broken_module, tmp_path, capsys):
    out = tmp_path / "report.json"
    rc = main(["conformance", broken_module, "--check", "threshold", "--json", str(out), "--no-progress"])
    assert rc == 1
    text = capsys.readouterr().out
    assert "first failing step" in text and "most likely axis" in text
    (check,) = json.loads(out.read_text())["checks"]
    assert check["verdict"] == "fail"
    assert check["axis"].startswith("threshold: the target matches the spec with threshold ρ_t > 5")
    mismatch = check["mismatch"]
    assert mismatch["step"] >= 1 and abs(mismatch["got"] - mismatch["expected"]) > mismatch["tolerance"]
    namespace = {}
    exec(check["repro"], namespace)  # prints, and returns the outcome of the replay
    outcome = eval(check["repro"].splitlines()[-2].strip() + check["repro"].splitlines()[-1].strip()[0:0]
                   if False else "None", namespace)
    from radam_ref.conformance import replay

    scenario = check["repro"].split("r'''")[1].split("'''")[0]
    outcome = replay(broken_module, check="threshold", scenario=scenario, verbose=False)
    assert outcome.verdict == "fail"
    assert outcome.mismatch.step == mismatch["step"]


@pytest.mark.parametrize("argv,needle", [
    (["conformance", "no.such.target"], "unknown target 'no.such.target'"),
    (["conformance", "no_such_module_xyz:thing"], "cannot import module 'no_such_module_xyz'"),
    (["conformance", "radam_ref:no_such_attr"], "has no attribute 'no_such_attr'"),
    (["conformance", "radam_ref.step", "--kwargs", "{bad"], "--kwargs: invalid JSON"),
    (["conformance", "radam_ref.step", "--kwargs", "[1]"], "--kwargs must be a JSON object"),
    (["conformance", "radam_ref.step", "--profile", "nope"], "unknown profile 'nope'"),
    (["conformance", "radam_ref.step", "--dtype", "float8"], "unknown dtype 'float8'"),
    (["conformance", "radam_ref.step", "--check", "nope"], "unknown check 'nope'"),
    (["conformance", "radam_ref.step", "--max-examples", "0"], "--max-examples must be >= 1"),
    (["conformance"], "give a TARGET or --all"),
    (["conformance", "radam_ref.step", "--all"], "give a TARGET or --all"),
    (["conformance", "optax.radam", "--dtype", "float64"], "does not support dtype 'float64'"),
])
def test_usage_errors_exit_2_and_name_what_failed(argv, needle, capsys):
    if argv[1:2] == ["optax.radam"]:
        pytest.importorskip("optax")
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_profile_auto_checks_against_the_fingerprint(broken_module, capsys):
    rc = main(["conformance", broken_module, "--profile", "auto", "--check", "threshold", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "profile auto" in out and "threshold 5" in out


def test_all_surveys_every_builtin_target(tmp_path, capsys):
    out = tmp_path / "all.json"
    rc = main(["conformance", "--all", "--check", "side_effects", "--no-fingerprint",
               "--json", str(out), "--no-progress"])
    assert rc == 0  # the project's own targets conform
    data = json.loads(out.read_text())
    from radam_ref.conformance import ALL_TARGETS

    assert len(data) == len(ALL_TARGETS)
    own = [r for r in data if r["name"].startswith("radam_ref") and r["verdict"] != "not installed"]
    assert own and all(r["verdict"] == "conforms" for r in own)
    assert "radam-ref conformance --all" in capsys.readouterr().out


def test_vectors_cli(tmp_path, capsys):
    assert main(["vectors", "validate"]) == 0
    assert main(["vectors", "check", "radam_ref.step", "--profile", "authors"]) == 0
    assert "0 failed" in capsys.readouterr().out
    assert main(["vectors", "generate", "--out", str(tmp_path), "--profile", "paper"]) == 0
    assert main(["vectors", "validate", str(tmp_path / "radam_paper_v1.json")]) == 0
    assert main(["vectors", "generate", "--profile", "nope"]) == 2


def test_results_page_lists_verdicts_fingerprints_and_repros():
    from radam_ref.conformance import run_conformance
    from radam_ref.conformance.results_page import build_results_page

    pytest.importorskip("torch")
    reports = [run_conformance("torch.optim.RAdam", {"foreach": True}, profile="torch", max_examples=2,
                               checks=["eps_zero", "degeneration"], shrink_seconds=1.0),
               run_conformance("torch.optim.RAdam", {"foreach": False}, profile="paper", max_examples=2,
                               checks=["threshold"])]
    page = build_results_page(reports, reports[:1], max_examples=2, seed=0, horizon=10)
    assert "| `eps_zero` | ✗ **FAIL** |" in page
    assert "### torch.optim.RAdam foreach=True (profile `torch`)" in page
    assert "0 / -0 = NaN" in page  # the documented mechanism of that finding
    assert "replay('torch.optim.RAdam', {'foreach': True}, check='eps_zero'" in page
    assert "threshold 5" in page and "vs paper: threshold, weight decay" in page


def test_committed_results_page_is_current_about_the_known_findings():
    """docs/conformance-results.md is generated; it must show what the CI finds."""
    import pathlib

    page = (pathlib.Path(__file__).parent.parent / "docs" / "conformance-results.md").read_text()
    assert page.startswith("# Conformance results")
    for needle in ("torch.optim.RAdam foreach=True (profile `torch`)", "#### `eps_zero`",
                   "optax.radam x64=True (profile `optax`)", "#### `autodiff`", "#### `complex`",
                   "optax.radam x64=False (profile `optax`)", "step-scalar arithmetic",
                   "[= torch]", "[= optax]", "replay("):
        assert needle in page, needle


def test_flags_in_the_guide_exist():
    """docs/conformance.md and the parsers agree (every documented flag exists)."""
    import pathlib
    import re

    from radam_ref.conformance.cli import build_parser
    from radam_ref.conformance.pytest_plugin import pytest_addoption

    text = (pathlib.Path(__file__).parent.parent / "docs" / "conformance.md").read_text()
    documented = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", text))
    cli_flags = {opt for action in build_parser()._actions for opt in action.option_strings}

    class Collect:
        def __init__(self):
            self.flags = set()

        def getgroup(self, name):
            return self

        def addoption(self, *names, **kwargs):
            self.flags.update(names)

    plugin = Collect()
    pytest_addoption(plugin)
    pytest_own = {"--pyargs"}
    unknown = documented - cli_flags - plugin.flags - pytest_own
    assert not unknown, unknown
    assert plugin.flags <= documented
