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


def _dying_target(die_at_step):
    """A target whose session raises a PortFailure (what an ``exec:`` port that crashed
    raises) at its ``die_at_step``-th step overall, like a port that dies mid-run."""
    import radam_ref
    from radam_ref.conformance.adapters.base import Session, Target
    from radam_ref.conformance.adapters.exec_protocol import PortFailure

    calls = {"n": 0}

    class Dying(Session):
        def __init__(self, groups, dtype):
            self.params_ = [[p.copy() for p in g.params] for g in groups]
            self.config = groups[0].config
            self.state = radam_ref.init(self.params_[0])

        def step(self, grads):
            calls["n"] += 1
            if calls["n"] >= die_at_step:
                raise PortFailure("port 'fake' was killed by signal SIGSEGV instead of answering step (id 7)")
            new, self.state = radam_ref.step(self.params_[0], grads[0], self.state, self.config)
            self.params_ = [list(new)]

        def params(self):
            return self.params_

    class DyingTarget(Target):
        name = "fake-port"
        profile = "paper"
        tunable = frozenset(f for f in ("threshold", "comparison", "eps_placement", "weight_decay_mode",
                                        "before_rectification", "nesterov", "maximize"))

        def open(self, groups, dtype):
            if len(groups) != 1:
                from radam_ref.conformance.adapters.base import NotSupported

                raise NotSupported("one group")
            return Dying(groups, dtype)

    return DyingTarget()


def test_a_port_dying_is_the_targets_error_in_its_own_words():
    """A PortFailure (``target_fault``) is the target's fault: a plain "error" with the
    port's message, not "the suite raised PortFailure" with a traceback; and a port dying
    in the preflight is not told it returned something that is not arrays."""
    from radam_ref.conformance import run_conformance

    early = run_conformance(_dying_target(1), checks=["threshold"], fingerprint=False)
    assert early.verdict == "error"
    assert "SIGSEGV" in early.message and "expected the parameters" not in early.message, early.message
    late = run_conformance(_dying_target(3), checks=["threshold"], fingerprint=False, max_examples=3)
    (result,) = late.results
    assert late.verdict == "error" and result.verdict == "error"
    assert result.summary.startswith("port 'fake' was killed by signal SIGSEGV"), result.summary
    assert "the suite raised" not in result.summary and not result.notes, (result.summary, result.notes)


HANGS_WITH_A_GRANDCHILD = '''
import os, subprocess, sys, time

def step(params, grads, state, config):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.environ["GRANDCHILD_PID"], "w") as fh:
        fh.write(str(child.pid))
    time.sleep(120)
'''


def test_ctrl_c_ends_the_run_with_130_and_kills_the_targets_processes(tmp_path):
    """SIGINT to the command (what Ctrl-C sends): one line, status 130, no traceback, and
    neither the target's process nor a process it started survives."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "conf_hang_gc.py").write_text(HANGS_WITH_A_GRANDCHILD)
    pid_file = tmp_path / "grandchild.pid"
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GRANDCHILD_PID": str(pid_file)}
    proc = subprocess.Popen([sys.executable, "-m", "radam_ref", "conformance", "conf_hang_gc:step", "--check",
                             "threshold", "--no-fingerprint"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pid_file.exists(), "the target never started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "interrupted" in err and "Traceback" not in err + out, err[-2000:]
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the process group was SIGKILLed; give the kernel a moment
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with open(f"/proc/{grandchild}/stat") as fh:  # a zombie waiting for init is dead too
            assert fh.read().split(") ")[1].startswith("Z"), "a process the target started survived"


PATCHES_THE_SUITE = '''
import numpy as np
import radam_ref
import radam_ref._step as _spec_step

_sqrt = np.sqrt


def _fast_sqrt(x, *args, **kwargs):
    return _sqrt(x, *args, **kwargs)


def at_import(params, grads, state, config):
    return radam_ref.step(params, grads, state, config.replace(threshold=5.0))


np.sqrt = _fast_sqrt  # installed when the module is imported


def mid_run(params, grads, state, config):
    # replaces the spec function the oracle uses by one that agrees with this target
    _spec_step._update_exact = _spec_step._update_exact.__wrapped__ if hasattr(
        _spec_step._update_exact, "__wrapped__") else (lambda *a, _f=_spec_step._update_exact, **k: _f(*a, **k))
    return radam_ref.step(params, grads, state, config)
'''


@pytest.mark.parametrize("attr,replaced", [("at_import", "numpy.sqrt"),
                                           ("mid_run", "radam_ref._step._update_exact")])
def test_a_target_that_replaces_the_suites_functions_gets_error_never_a_verdict(attr, replaced, tmp_path):
    """The oracle runs in the target's (child) process: a target that replaces NumPy's or
    the spec's functions there could make the suite agree with it.  It gets "error",
    naming what it replaced."""
    from radam_ref.conformance.isolation import run_isolated

    (tmp_path / "conf_patcher.py").write_text(PATCHES_THE_SUITE)
    report = run_isolated(f"conf_patcher:{attr}", {}, timeout=120, env={"PYTHONPATH": str(tmp_path)},
                          checks=["threshold"], max_examples=2, fingerprint=False)
    assert report.verdict == "error", (report.verdict, report.message)
    assert replaced in report.message and "no verdict can be trusted" in report.message, report.message


LEAVES_A_CHILD_BEHIND = '''
import os, time
import radam_ref

def step(params, grads, state, config):
    if not os.environ.get("FORKED"):
        os.environ["FORKED"] = "1"
        if os.fork() == 0:
            with open(os.environ["GRANDCHILD_PID"], "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(120)
            os._exit(0)
    return radam_ref.step(params, grads, state, config)
'''


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # killed, waiting for init to reap it
        return fh.read().split(") ")[1].startswith("Z")


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc"), reason="needs fork and /proc")
def test_a_process_the_target_forks_does_not_outlive_a_run_that_conforms(tmp_path):
    """A target that forks (a worker it never joins) still conforms, and the forked
    process is killed with the target's process group when the run ends."""
    import time

    from radam_ref.conformance.isolation import run_isolated

    (tmp_path / "conf_forker.py").write_text(LEAVES_A_CHILD_BEHIND)
    pid_file = tmp_path / "gc.pid"
    report = run_isolated("conf_forker:step", {}, timeout=120,
                          env={"PYTHONPATH": str(tmp_path), "GRANDCHILD_PID": str(pid_file)},
                          checks=["threshold"], max_examples=2, fingerprint=False)
    assert report.verdict == "conforms", report.message
    pid = int(pid_file.read_text())
    for _ in range(50):
        if _dead(pid):
            break
        time.sleep(0.1)
    assert _dead(pid), "the process the target forked outlived the run"
