"""The process protocol (``exec:``): messages, schema, and ports that misbehave.

A small port written here in Python (it steps with :func:`radam_ref.step`)
speaks protocol version 1 and can be told to break it at its N-th step: write a
line that is not JSON, an invalid reply, a reply out of order, hang, exit,
abort, or miscount its steps.  Each must give the verdict "error" with a
message that says what happened — never a failed check, never a traceback —
and a correct port must conform.  The C and JS drivers' own replies are checked
against the schema with a full JSON Schema validator.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import radam_ref
from radam_ref.conformance import run_conformance
from radam_ref.conformance.adapters.exec_protocol import (
    ExecTarget,
    PortFailure,
    decode_array,
    encode_array,
    protocol_schema,
)
from radam_ref.conformance.adapters.registry import TargetUnavailable, resolve_target
from radam_ref.conformance.scenario import Group

ROOT = Path(__file__).resolve().parents[1]

FAKE_PORT = textwrap.dedent('''
    """A protocol-1 port in Python that breaks the protocol at its N-th step (argv: FAULT N)."""
    import json, os, sys, time
    import numpy as np
    import radam_ref
    from radam_ref.conformance.scenario import config_from_json

    fault, at = sys.argv[1], int(sys.argv[2])

    def unhex(s):
        return float(s) if s in ("nan", "inf", "-inf") else float.fromhex(s)

    def hexf(x):
        return "nan" if x != x else ("inf" if x == float("inf") else "-inf" if x == -float("inf") else x.hex())

    def arr(d):
        return np.array([unhex(s) for s in d["data"]], dtype=np.float64).reshape(d["shape"])

    def enc(a):
        return {"shape": list(a.shape), "data": [hexf(float(x)) for x in a.reshape(-1)]}

    def send(obj):
        sys.stdout.write(json.dumps(obj) + "\\n")
        sys.stdout.flush()

    sessions, totals = {}, {"sessions": 0, "steps": 0, "groups": 0}
    if fault == "hello-garbage":
        print("Welcome to my optimizer!", flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        rid, method, p = req["id"], req["method"], req["params"]
        result = None
        if method == "hello":
            result = {"protocol": 1, "name": "fake", "version": "0", "capabilities": {
                "dtypes": ["float64"], "weight_decay_modes": ["none", "l2", "decoupled", "decoupled_moving"],
                "options": ["threshold", "comparison", "eps_placement", "eps_root", "decay_form",
                            "before_rectification", "nesterov", "maximize"]}}
            if fault == "hello-refuses":
                send({"id": rid, "error": {"code": -32602, "message": "protocol 1 is too old for me"}})
                continue
        elif method == "open":
            (group,) = p["groups"]
            params = [arr(a) for a in group["params"]]
            sid = len(sessions)
            sessions[sid] = {"params": params, "state": radam_ref.init(params), "steps": 0,
                             "config": config_from_json(group["config"])}
            totals["sessions"] += 1
            totals["groups"] += 1
            result = {"session": sid}
        elif method == "step":
            totals["steps"] += 1
            s = sessions[p["session"]]
            s["steps"] += 1
            if totals["steps"] == at:
                if fault == "error":  # a step that fails is not a step taken
                    totals["steps"] -= 1
                    s["steps"] -= 1
                    send({"id": rid, "error": {"code": 2, "message": "out of cheese"}})
                    continue
                if fault == "garbage":
                    print("Traceback (most recent call last): oops", flush=True)
                    continue
                if fault == "hang":
                    time.sleep(3600)
                if fault == "exit":
                    sys.stderr.write("fake: giving up\\n")
                    sys.stderr.flush()
                    sys.exit(3)
                if fault == "abort":
                    os.abort()
                if fault == "order":
                    send({"id": rid + 1, "result": {"params": [[enc(x) for x in s["params"]]]}})
                    continue
                if fault == "schema":
                    send({"id": rid, "result": {"params": "all good"}})
                    continue
                if fault == "both":
                    send({"id": rid, "result": {}, "error": {"code": 2, "message": "?"}})
                    continue
            grads = [arr(a) for a in p["grads"][0]]
            s["params"], s["state"] = radam_ref.step(s["params"], grads, s["state"], s["config"])
            result = {"params": [[enc(np.asarray(x)) for x in s["params"]]]}
        elif method == "end":
            s = sessions.pop(p["session"])
            result = {"steps": s["steps"] + (1 if fault == "miscount" else 0), "groups": 1}
        elif method == "close":
            send({"id": rid, "result": totals})
            sys.exit(5 if fault == "close-status" else 0)
        if result is None:
            send({"id": rid, "error": {"code": -32601, "message": "method not found: " + method}})
        else:
            send({"id": rid, "result": result})
''')


@pytest.fixture(scope="module")
def fake_port(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fake-port") / "fake_port.py"
    path.write_text(FAKE_PORT)
    return path


def _command(fake_port: Path, fault: str, at: int = 0) -> str:
    return f"exec:{sys.executable} {fake_port} {fault} {at}"


def _run(fake_port, fault, at=6, **kwargs):
    return run_conformance(_command(fake_port, fault, at), kwargs.pop("target_kwargs", None),
                           checks=["trajectories", "threshold"], max_examples=3, fingerprint=False, **kwargs)


def test_a_correct_python_port_conforms(fake_port):
    report = _run(fake_port, "none")
    assert report.verdict == "conforms", [(r.check, r.verdict, r.summary) for r in report.results]


def test_close_reports_the_counts_and_the_port_exits_zero(fake_port):
    target = ExecTarget(_command(fake_port, "none")[len("exec:"):])
    config = radam_ref.RAdamConfig()
    for _ in range(2):
        session = target.open([Group([np.array([1.0, 2.0])], config)], "float64")
        for _ in range(3):
            session.step([[np.array([0.5, -0.25])]])
        session.close()
    dropped = target.open([Group([np.array([1.0])], config)], "float64")
    dropped.step([[np.array([1.0])]])
    del dropped  # a session a check forgets to close is ended before the next request
    assert target.shutdown() == {"sessions": 3, "steps": 7, "groups": 3}
    assert target.channel.proc.returncode == 0


@pytest.mark.parametrize("fault, words", [
    ("garbage", "a line that is not JSON: b'Traceback"),
    ("exit", "exited with status 3 instead of answering step"),
    ("abort", "was killed by signal SIGABRT instead of answering step"),
    ("order", "(out of order)"),
    ("schema", "invalid result ($.result.params: expected array"),
    ("both", "invalid reply ($: matches 2 of the oneOf alternatives"),
    ("miscount", "steps and 1 groups; the suite sent"),
])
def test_a_port_that_breaks_the_protocol_gets_the_verdict_error(fake_port, fault, words):
    report = _run(fake_port, fault)
    assert report.verdict == "error", [(r.check, r.verdict, r.summary) for r in report.results]
    text = " ".join([report.message] + [r.summary for r in report.results])
    assert words in text
    assert "fail" not in {r.verdict for r in report.results}


def test_a_port_that_hangs_is_killed_after_the_request_timeout(fake_port):
    report = _run(fake_port, "hang", target_kwargs={"timeout": 1.5})
    assert report.verdict == "error"
    text = " ".join([report.message] + [r.summary for r in report.results])
    assert "did not answer step (id" in text and "within 1.5 s (killed)" in text


def test_an_error_reply_to_a_step_is_a_failed_check_not_a_protocol_error(fake_port):
    report = _run(fake_port, "error", at=7)
    failed = [r for r in report.results if r.verdict == "fail"]
    assert report.verdict == "does not conform" and failed
    assert "fake answered step with error 2: out of cheese" in json.dumps(failed[0].to_json(), ensure_ascii=False)


def test_a_missing_capability_is_not_supported(fake_port):
    report = run_conformance(_command(fake_port, "none"), checks=["param_groups", "state_dict", "grad_none",
                                                                  "side_effects", "float32"],
                             max_examples=2, fingerprint=False)
    assert {r.check: r.verdict for r in report.results} == dict.fromkeys(
        ["param_groups", "state_dict", "grad_none", "side_effects", "float32"], "not supported")


@pytest.mark.parametrize("fault, words", [
    ("hello-garbage", "not JSON: b'Welcome"),
    ("hello-refuses", "refused hello for protocol 1: error -32602: protocol 1 is too old for me"),
])
def test_a_port_that_fails_hello_is_reported_before_any_check(fake_port, fault, words):
    with pytest.raises(TargetUnavailable, match="could not be started") as info:
        resolve_target(_command(fake_port, fault))
    assert words in str(info.value)


def test_a_command_that_does_not_exist_is_a_usage_error():
    with pytest.raises(TargetUnavailable, match="could not be started.*No such file"):
        resolve_target("exec:./no-such-port --flag")
    with pytest.raises(TargetUnavailable, match="accepts timeout and cwd"):
        resolve_target(f"exec:{sys.executable} -c pass", {"lr": 0.1})


def test_close_with_a_nonzero_exit_status_is_a_protocol_error(fake_port):
    target = ExecTarget(_command(fake_port, "close-status")[len("exec:"):])
    with pytest.raises(PortFailure, match="exited with status 5 after close"):
        target.shutdown()


def test_cli_reports_a_port_killed_mid_run_as_error_with_exit_status_2(fake_port, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "radam_ref", "conformance", _command(fake_port, "abort", 6),
                           "--check", "trajectories", "--max-examples", "3", "--no-fingerprint"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "SIGABRT" in out and "Traceback" not in out


# --------------------------------------------------------------------------- #
# Messages and schema
# --------------------------------------------------------------------------- #


def test_arrays_round_trip_bit_exactly_nan_and_inf_included():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3)) * 10.0 ** rng.integers(-300, 300, (2, 3))
    a[0, 0], a[0, 1], a[1, 2] = np.nan, -np.inf, -0.0
    back = decode_array(json.loads(json.dumps(encode_array(a))))
    assert back.shape == (2, 3)
    np.testing.assert_array_equal(back.view(np.uint64)[~np.isnan(a)], a.view(np.uint64)[~np.isnan(a)])
    assert np.isnan(back[0, 0])
    with pytest.raises(ValueError, match="shape \\[2\\] has 3 elements, expected 2"):
        decode_array({"shape": [2], "data": ["0x1p+0"] * 3})


def _driver_transcript(argv) -> list:
    """Requests covering every method, and the driver's replies."""
    config = radam_ref.conformance.scenario.config_to_json(radam_ref.RAdamConfig(weight_decay=0.1))
    param = encode_array(np.array([1.0, -2.0]))
    grad = encode_array(np.array([0.5, np.nan]))
    requests = [
        ("hello", {"protocol": 1, "client": "test"}),
        ("open", {"dtype": "float64", "groups": [{"config": config, "params": [param]}]}),
        ("step", {"session": 0, "grads": [[grad]]}),
        ("add_group", {"session": 0, "group": {"config": config, "params": [param, param]}}),
        ("step", {"session": 0, "grads": [[None], [grad, grad]]}),
        ("save_state", {"session": 0}),
        ("inputs", {"session": 0}),
        ("open", {"dtype": "float16", "groups": [{"config": config, "params": [param]}]}),
        ("frobnicate", {}),
        ("end", {"session": 0}),
        ("close", {}),
    ]
    lines = [json.dumps({"id": i, "method": m, "params": p}) for i, (m, p) in enumerate(requests, 1)]
    proc = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in replies] == list(range(1, len(requests) + 1))
    return list(zip(requests, lines, replies))


def _check_transcript(transcript) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = protocol_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for (method, _), line, reply in transcript:
        validator.validate(json.loads(line))  # requests match the schema
        validator.validate(reply)
        if "result" in reply:
            sub = {"$ref": f"#/$defs/results/properties/{method}", "$defs": schema["$defs"]}
            jsonschema.Draft202012Validator(sub).validate(reply["result"])
    by_method = {m: r for (m, _), _, r in transcript}
    assert by_method["frobnicate"]["error"]["code"] == -32601
    errors = [r for (m, _), _, r in transcript if m == "open" and "error" in r]
    assert errors and errors[0]["error"]["code"] == 1  # float16: not supported
    assert by_method["end"]["result"] == {"steps": 2, "groups": 2}
    assert by_method["close"]["result"] == {"sessions": 1, "steps": 2, "groups": 2}
    assert by_method["inputs"]["result"]["grads"][0] == [None]
    assert decode_array(by_method["inputs"]["result"]["grads"][1][0]).tolist()[0] == 0.5
    # NaN gradient element: NaN parameter element; the other element moved.
    first = decode_array(transcript[2][2]["result"]["params"][0][0])
    assert np.isnan(first[1]) and first[0] != 1.0


def test_c_driver_replies_match_the_schema(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler `cc` on PATH (install gcc or clang; see README)")
    from test_ports import build_c

    _check_transcript(_driver_transcript([str(build_c(tmp_path))]))


def test_js_driver_replies_match_the_schema():
    node = shutil.which("node")
    if node is None:
        pytest.skip("no `node` on PATH (install Node.js >= 18; see README)")
    _check_transcript(_driver_transcript([node, str(ROOT / "ports" / "js" / "driver.mjs")]))


def test_drivers_answer_requests_before_hello_and_garbage_with_json_rpc_errors(tmp_path):
    commands = []
    if shutil.which("node"):
        commands.append([shutil.which("node"), str(ROOT / "ports" / "js" / "driver.mjs")])
    if shutil.which("cc"):
        from test_ports import build_c

        commands.append([str(build_c(tmp_path))])
    if not commands:
        pytest.skip("neither `cc` nor `node` on PATH")
    lines = ['{"id": 1, "method": "open", "params": {}}', "{not json", '{"id": "x", "method": 3}',
             '{"id": 2, "method": "hello", "params": {"protocol": 2}}']
    for argv in commands:
        proc = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
        replies = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [(r["id"], r["error"]["code"]) for r in replies] == [(1, -32002), (None, -32700), (None, -32600),
                                                                      (2, -32602)], argv
        assert proc.returncode == 0  # stdin EOF: exit


def test_the_schema_ships_with_the_package():
    from importlib import resources

    path = resources.files("radam_ref.conformance") / "schemas" / "radam_protocol_v1.json"
    assert json.loads(path.read_text())["$id"] == "radam_protocol_v1.json"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject
