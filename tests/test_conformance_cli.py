"""`radam-ref conformance`: exit statuses, messages, JSON, repros, --all and the results page."""

from __future__ import annotations

import json
import os
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


def test_failing_target_exits_1_with_one_line_per_finding_and_a_replay_that_reproduces(broken_module, tmp_path,
                                                                                      capsys):
    out = tmp_path / "report.json"
    rc = main(["conformance", broken_module, "--profile", "paper", "--check", "threshold", "--json", str(out),
               "--no-progress"])
    assert rc == 1
    text = capsys.readouterr().out
    (check,) = json.loads(out.read_text())["checks"]
    assert check["verdict"] == "fail"
    assert check["axis"].startswith("threshold: the target matches the spec with threshold ρ_t > 5")
    mismatch = check["mismatch"]
    assert mismatch["step"] >= 1 and abs(mismatch["got"] - mismatch["expected"]) > mismatch["tolerance"]
    finding = check["findings"][0] if check.get("findings") else None
    ref = finding["id"] if finding else "threshold"
    command = f"radam-ref replay {out} {ref}"
    assert command in text  # one line, unwrapped
    assert main(command.split()[1:]) == 1  # reproduced
    replayed = capsys.readouterr().out
    assert "reproduced" in replayed and f"step {mismatch['step']}," in replayed
    # the Python repro in the JSON reproduces it too
    from radam_ref.conformance import replay

    scenario = check["repro"].split("r'''")[1].split("'''")[0]
    outcome = replay(broken_module, check="threshold", scenario=scenario, verbose=False)
    assert outcome.verdict == "fail"
    assert outcome.mismatch.step == mismatch["step"]


def test_a_failing_run_prints_a_screenful_and_keeps_the_scenarios_in_the_json(broken_module, tmp_path, capsys,
                                                                              monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("COLUMNS", "72")
    rc = main(["conformance", broken_module, "--profile", "paper", "--check", "threshold", "--check", "trajectories",
               "--check", "maximize", "--check", "long_horizon", "--horizon", "300", "--max-examples", "3",
               "--json", "r.json"])
    assert rc == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) <= 50
    assert "0x1." not in captured.out  # hex-float scenarios stay in the JSON
    assert "0x1." in (work / "r.json").read_text()
    boxed = [ln for ln in lines if ln[:1] in "┏┃┡│└"]
    assert boxed and max(len(ln) for ln in boxed) <= 72  # COLUMNS honoured
    replays = [ln.strip() for ln in lines if ln.strip().startswith("radam-ref replay r.json ")]
    assert replays
    assert "[1/1]" in captured.err and "threshold: fail" in captured.err  # progress on a piped run
    assert sorted(os.listdir(work)) == ["r.json"]  # no .hypothesis/ or other stray files
    rc = main(["conformance", broken_module, "--profile", "paper", "--check", "threshold", "--json", "r.json",
               "--verbose", "--no-progress"])
    assert "replay(" in capsys.readouterr().out  # the Python repro, only with --verbose


def test_a_replay_line_copied_from_an_80_column_tmux_window_reproduces(broken_module, tmp_path):
    """Run the CLI in a real terminal 80 columns wide, copy the replay line from the
    pane (capture-pane -J joins what the terminal folded), paste it: it reproduces."""
    import shlex
    import shutil
    import subprocess
    import sys
    import time

    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    bindir = os.path.dirname(sys.executable)
    report_dir = tmp_path / "reports-of-the-conformance-suite" / "one-rather-long-directory-name"
    report_dir.mkdir(parents=True)
    report = report_dir / "conformance-report-of-the-broken-module.json"
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(tmp_path), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    env.pop("TMUX", None)
    socket = f"radam-ref-test-{os.getpid()}"
    command = (f"cd {shlex.quote(str(tmp_path))} && radam-ref conformance {broken_module} --profile paper "
               f"--check threshold --no-progress --json {shlex.quote(str(report))}; echo __DONE__; sleep 120")
    subprocess.run([tmux, "-L", socket, "-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "50",
                    "-s", "conf", command], check=True, env=env)
    try:
        deadline = time.monotonic() + 240
        pane = ""
        while time.monotonic() < deadline:
            pane = subprocess.run([tmux, "-L", socket, "capture-pane", "-p", "-J", "-S", "-", "-t", "conf"],
                                  capture_output=True, text=True, env=env).stdout
            if "__DONE__" in pane:
                break
            time.sleep(0.5)
        width = subprocess.run([tmux, "-L", socket, "display-message", "-p", "-t", "conf", "#{pane_width}"],
                               capture_output=True, text=True, env=env).stdout.strip()
    finally:
        subprocess.run([tmux, "-L", socket, "kill-server"], capture_output=True, env=env)
    assert "__DONE__" in pane, pane
    assert width == "80"
    line = next(ln.strip() for ln in pane.splitlines() if ln.strip().startswith("radam-ref replay "))
    assert len(line) > 80  # the terminal had to fold it
    replayed = subprocess.run(shlex.split(line), capture_output=True, text=True, env=env, cwd=str(tmp_path),
                              timeout=300)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "reproduced" in replayed.stdout
    step = json.loads(report.read_text())["checks"][0]["mismatch"]["step"]
    assert f"step {step}," in replayed.stdout


def test_replay_usage_errors(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "missing.json"), "threshold/1"]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "r.json").write_text(json.dumps({"target": "radam_ref.step", "checks": []}))
    assert main(["replay", str(tmp_path / "r.json"), "threshold/1"]) == 2
    assert "no replayable finding 'threshold/1'" in capsys.readouterr().err
    # a scenario edited by hand (or truncated): one line, exit 2, no traceback
    bad = {"target": "radam_ref.step", "spec": ["radam_ref.step", {}], "checks": [
        {"check": "threshold", "verdict": "fail",
         "findings": [{"id": "threshold/1", "check": "threshold", "scenario": {"groups": [{"config": {"lr": "zzz"}}]}}]}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["replay", str(tmp_path / "bad.json"), "threshold/1"]) == 2
    assert "is not valid" in capsys.readouterr().err
    from radam_ref.conformance.replay_cli import find

    finding = {"id": "threshold/1", "check": "threshold", "scenario": {"s": 1}, "extra": {"k": 2}}
    reports = [{"target": "a", "checks": []},
               {"target": "b", "checks": [{"check": "threshold", "verdict": "fail", "findings": [finding]}]}]
    assert "write N:threshold/1" in find(reports, "threshold/1")
    report, check, ref, scenario, extra = find(reports, "2:threshold/1")
    assert (report["target"], check, ref, scenario, extra) == ("b", "threshold", "threshold/1", {"s": 1}, {"k": 2})
    assert find(reports, "2:threshold")[2] == "threshold/1"  # a check name: its first finding
    assert "no report 3" in find(reports, "3:threshold/1")


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
    (["conformance", "radam_ref.step", "--timeout", "nan"], "--timeout must be > 0"),
    (["conformance", "radam_ref.step", "--json", "same.json", "--results-page", "./same.json"],
     "name the same file"),
    # a step function gets --kwargs at every step: an unknown keyword is a usage error too
    (["conformance", "radam_ref.step", "--check", "threshold", "--kwargs", '{"a": {"b": 1}}', "--no-progress"],
     "does not accept the keyword argument 'a'"),
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
    assert "threshold 5" in out


def test_all_runs_every_builtin_target_and_says_which_are_not_available(tmp_path, capsys):
    """Every third-party RAdam of the test environment runs under --all; the ones
    that cannot are listed with the reason."""
    out = tmp_path / "all.json"
    rc = main(["conformance", "--all", "--check", "side_effects", "--no-fingerprint", "--max-examples", "2",
               "--json", str(out), "--no-progress"])
    assert rc == 0  # the project's own targets conform; third-party findings are reported, not fatal
    data = json.loads(out.read_text())
    from radam_ref.conformance import ALL_TARGETS

    assert len(data) == len(ALL_TARGETS)
    by_target = {r["target"]: r for r in data}
    own = [r for r in data if r["name"].startswith("radam_ref") and r["verdict"] != "not installed"]
    assert own and all(r["verdict"] == "conforms" for r in own)
    assert all(r["verdict"] != "error" for r in data), [(r["target"], r["message"]) for r in data]
    import importlib.util

    for name, package in [("timm.optim.RAdam", "timm"), ("timm.optim.RAdamLegacy", "timm"),
                          ("torch_optimizer.RAdam", "torch_optimizer"),
                          ("pytorch_optimizer.RAdam", "pytorch_optimizer")]:
        row = by_target[name]
        if importlib.util.find_spec(package) is None:
            assert row["verdict"] == "not installed" and package in row["message"]
        else:
            assert row["verdict"] in ("conforms", "does not conform"), (name, row["message"])
            assert [c["check"] for c in row["checks"]] == ["side_effects"]
    for name in ("authors.RAdam", "authors.PlainRAdam"):
        row = by_target[name]
        if os.environ.get("RADAM_REF_AUTHORS_FILE"):
            assert row["verdict"] in ("conforms", "does not conform"), (name, row["message"])
        else:
            assert row["verdict"] == "not installed" and "set RADAM_REF_AUTHORS_FILE" in row["message"]
    assert "radam-ref conformance --all" in capsys.readouterr().out


def test_an_installed_package_that_fails_to_import_is_reported_not_fatal(tmp_path, capsys, monkeypatch):
    from radam_ref.conformance.adapters import registry

    broken = tmp_path / "torch_optimizer"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise RuntimeError('this install is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "ALL_TARGETS", (("torch_optimizer.RAdam", {}), ("radam_ref.step", {})))
    out = tmp_path / "all.json"
    rc = main(["conformance", "--all", "--check", "threshold", "--no-fingerprint", "--max-examples", "2",
               "--json", str(out), "--no-progress"])
    assert rc == 0
    first, second = json.loads(out.read_text())
    assert first["verdict"] == "not installed"
    assert "fails to load (RuntimeError: this install is broken)" in first["message"]
    assert second["verdict"] == "conforms"


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
                   "optax.radam x64=False (profile `optax`)", "step scalars (1 − βᵗ, ρ_t, r_t) computed in float32",
                   "## Third-party RAdams, with no `--profile`", "`groups/shared_cache`",
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


_PIPE = """
set -o pipefail
{exe} -m radam_ref conformance radam_ref.step --check threshold --max-examples 2 --no-fingerprint {extra} \
    2>{err} | true  # the reader is gone before anything is written
"""


@pytest.mark.parametrize("extra", ["", "--json -"])
def test_a_reader_that_closes_the_pipe_changes_nothing(extra, tmp_path):
    """``radam-ref conformance X | head``: no traceback, and the exit status is the
    verdict's (0 here), not rich's 1 ("does not conform") nor a BrokenPipeError."""
    import subprocess
    import sys

    err = tmp_path / "err.txt"
    proc = subprocess.run(["bash", "-c", _PIPE.format(exe=sys.executable, extra=extra, err=err)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    text = err.read_text()
    assert "Traceback" not in text and "BrokenPipe" not in text, text
    assert proc.returncode == 0, (proc.returncode, text)


def test_a_tiny_columns_is_raised_to_a_usable_width(monkeypatch, capsys):
    """COLUMNS=10 is honoured as far as a table can be read: the report is laid out at
    the minimum width, not one character per line."""
    from radam_ref.conformance.report import MIN_WIDTH

    monkeypatch.setenv("COLUMNS", "10")
    assert main(["conformance", "radam_ref.step", "--check", "threshold", "--max-examples", "2",
                 "--no-fingerprint", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = [ln for ln in lines if ln[:1] in "┏┃┡│└"]
    assert table and all(len(ln) == MIN_WIDTH for ln in table), table
    assert any("┃ check" in ln and "verdict" in ln for ln in table)
