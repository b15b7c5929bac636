"""The conformance runner survives the code it checks: real child targets that exit,
abort, crash in native code, hang, sleep, return garbage, or are asked for what they
cannot do; each gets the right verdict and exit status, and ``--all`` keeps every
other target's result when one crashes.

The faulty targets are the spec's own step with one fault injected when the step is
asked to maximize, so the ``threshold`` check (which never maximizes) completes
before the ``maximize`` check trips the fault: what finished must survive.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from radam_ref.cli import main

FAULTY = '''
import ctypes, os, sys, time

import radam_ref


def _faulty(action):
    def step(params, grads, state, config):
        if config.maximize:
            action()
        return radam_ref.step(params, grads, state, config)
    return step


def _loop():
    while True:
        pass


exit0 = _faulty(lambda: sys.exit(0))
exit3 = _faulty(lambda: sys.exit(3))
hard_exit0 = _faulty(lambda: os._exit(0))
abort = _faulty(os.abort)
native_crash = _faulty(lambda: ctypes.string_at(0))
infinite_loop = _faulty(_loop)
sleep = _faulty(lambda: time.sleep(3600))


def noisy_abort(params, grads, state, config):
    print("to stdout: about to abort")
    print("to stderr: about to abort", file=sys.stderr)
    sys.stdout.flush(); sys.stderr.flush()
    os.abort()


def wrong_return(params, grads, state, config):
    return "params", state
'''

CHECKS = ["--check", "threshold", "--check", "maximize", "--max-examples", "2", "--no-fingerprint"]


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    (tmp_path / "conf_faulty_mod.py").write_text(textwrap.dedent(FAULTY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("attr,reason,timeout", [
    ("exit0", "exited with status 0 before finishing during maximize", None),
    ("hard_exit0", "exited with status 0 before finishing during maximize", None),
    ("exit3", "exited with status 3 during maximize", None),
    ("abort", "killed by SIGABRT (signal 6) during maximize", None),
    ("native_crash", "killed by SIGSEGV (signal 11) during maximize", None),
    ("infinite_loop", "timed out after 4 s during maximize", "4"),
    ("sleep", "timed out after 4 s during maximize", "4"),
])
def test_a_target_that_dies_or_hangs_gets_error_and_exit_2_keeping_what_finished(faulty, capsys, attr, reason,
                                                                                   timeout):
    argv = ["conformance", f"conf_faulty_mod:{attr}", *CHECKS, "--json", "report.json"]
    if timeout:
        argv += ["--timeout", timeout]
    rc, out, err = _run(argv, capsys)
    assert rc == 2
    data = json.loads((faulty / "report.json").read_text())
    assert data["verdict"] == "error"
    assert reason in data["message"]
    assert reason in out
    verdicts = {c["check"]: c["verdict"] for c in data["checks"]}
    assert verdicts == {"threshold": "pass", "maximize": "error"}  # the finished check survives
    assert "threshold: pass" in err  # progress, streamed while the child ran


def test_the_output_tail_of_a_crashed_target_has_both_streams(faulty, capsys):
    rc, out, _ = _run(["conformance", "conf_faulty_mod:noisy_abort", *CHECKS, "--json", "r.json"], capsys)
    assert rc == 2
    data = json.loads((faulty / "r.json").read_text())
    assert "SIGABRT" in data["message"] and "during preflight" in data["message"]
    assert "to stdout: about to abort" in data["output"] and "to stderr: about to abort" in data["output"]
    assert "to stderr: about to abort" in out
    assert data["checks"] == []


def test_wrong_return_type_is_an_error_naming_what_was_expected(faulty, capsys):
    rc, out, _ = _run(["conformance", "conf_faulty_mod:wrong_return", *CHECKS, "--json", "r.json"], capsys)
    assert rc == 2
    data = json.loads((faulty / "r.json").read_text())
    assert data["verdict"] == "error"
    assert "returned params of type str" in data["message"]
    assert "expected a list of 1 arrays shaped [(3,)]" in data["message"]


def test_constructor_typo_is_a_usage_error_naming_the_keyword_and_the_signature(faulty, capsys):
    pytest.importorskip("torch")
    rc, _, err = _run(["conformance", "torch.optim.RAdam", "--kwargs", '{"forech": false}', *CHECKS], capsys)
    assert rc == 2
    assert "does not accept the keyword argument 'forech'" in err
    assert "its signature is RAdam(params" in err and "foreach" in err


@pytest.mark.parametrize("kwargs,covered_by", [
    ('{"decoupled_weight_decay": true}', "--check weight_decay_modes"),
    ('{"weight_decay": 0.1}', "--check"),
    ('{"maximize": true}', "--check maximize"),
    ('{"n_sma_threshold": 4}', "--profile"),
    ('{"degenerated_to_sgd": true}', "--profile"),
])
def test_a_kwarg_the_suite_sets_is_rejected_up_front(faulty, capsys, kwargs, covered_by):
    rc, out, err = _run(["conformance", "torch.optim.RAdam", "--kwargs", kwargs, *CHECKS], capsys)
    assert rc == 2
    key = next(iter(json.loads(kwargs)))
    assert f"{key!r} is" in err and covered_by in err
    assert out == ""  # nothing ran


def test_a_configuration_the_target_refuses_is_not_supported_with_its_reason(faulty, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("capturable=True is supported on this machine (CUDA)")
    rc, out, _ = _run(["conformance", "torch.optim.RAdam", "--kwargs", '{"capturable": true}', *CHECKS,
                       "--json", "r.json"], capsys)
    assert rc == 1
    data = json.loads((faulty / "r.json").read_text())
    assert data["verdict"] == "not supported"
    assert "capturable=True" in data["message"] and "supported devices" in data["message"]
    assert data["checks"] == []


def test_all_keeps_every_other_target_when_one_crashes(faulty, capsys, monkeypatch):
    from radam_ref.conformance.adapters import registry

    monkeypatch.setattr(registry, "ALL_TARGETS", (
        ("radam_ref.step", {}),
        ("conf_faulty_mod:native_crash", {}),
        ("radam_ref.backends.numpy", {}),
    ))
    rc, out, err = _run(["conformance", "--all", *CHECKS, "--json", "all.json"], capsys)
    assert rc == 2
    data = json.loads((faulty / "all.json").read_text())
    assert [r["verdict"] for r in data] == ["conforms", "error", "conforms"]
    assert "SIGSEGV" in data[1]["message"]
    assert [c["verdict"] for c in data[0]["checks"]] == ["pass", "pass"]
    assert [c["verdict"] for c in data[2]["checks"]] == ["pass", "pass"]
    assert "[3/3] radam_ref.backends.numpy" in err


def test_output_paths_are_checked_before_any_work(faulty, capsys):
    rc, out, err = _run(["conformance", "radam_ref.step", *CHECKS, "--json", "no/such/dir/r.json"], capsys)
    assert rc == 2 and "does not exist" in err and "[1/1]" not in err
    os.mkdir(faulty / "adir")
    rc, _, err = _run(["conformance", "radam_ref.step", *CHECKS, "--json", "adir"], capsys)
    assert rc == 2 and "is a directory" in err


def test_json_dash_writes_json_to_stdout_and_the_report_to_stderr(faulty, capsys):
    rc, out, err = _run(["conformance", "radam_ref.step", *CHECKS, "--json", "-"], capsys)
    assert rc == 0
    assert json.loads(out)["verdict"] == "conforms"
    assert "radam_ref.step: conforms" in err
    assert not (faulty / "-").exists()


def test_the_pytest_mode_has_a_time_limit_too(faulty):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "radam_ref.conformance", "-q", "-p", "no:cacheprovider",
         "--radam-target", "conf_faulty_mod:sleep", "--radam-timeout", "4", "--radam-max-examples", "2",
         "-k", "threshold or maximize"],
        capture_output=True, text=True, cwd=str(faulty), timeout=300,
        env={**os.environ, "PYTHONPATH": str(faulty)},
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed, 1 passed" in result.stdout
    assert "timed out after 4 s during maximize" in result.stdout
    assert set(os.listdir(faulty)) <= {"conf_faulty_mod.py", "__pycache__"}  # no .hypothesis/
